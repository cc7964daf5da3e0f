using Gatehouse.Certificates;
using Gatehouse.Challenges;
using Gatehouse.Storage;

namespace Gatehouse.Keys;

/// <summary>
/// One kind of store record that holds sealed secrets: where such records live, how to find their envelopes and how
/// to write the record back with its envelopes replaced. Rewrap, retire and <c>keys list</c> walk these.
/// </summary>
public sealed class SealedRecordKind
{
    private readonly Func<StoreEntry, IReadOnlyList<byte[]>> _envelopes;
    private readonly Func<StoreEntry, Func<byte[], byte[]>, byte[]> _rewrite;

    public SealedRecordKind(string name, string prefix, Func<StoreEntry, IReadOnlyList<byte[]>> envelopes, Func<StoreEntry, Func<byte[], byte[]>, byte[]> rewrite)
    {
        Name = name;
        Prefix = prefix;
        _envelopes = envelopes;
        _rewrite = rewrite;
    }

    /// <summary>What people call these records.</summary>
    public string Name { get; }

    /// <summary>The store prefix (or exact key) the records live under.</summary>
    public string Prefix { get; }

    /// <summary>The sealed secrets of one record (none when it has none yet).</summary>
    /// <exception cref="FormatException">The record is not of this kind.</exception>
    public IReadOnlyList<byte[]> Envelopes(StoreEntry entry) => _envelopes(entry);

    /// <summary>The record's value with every envelope passed through <paramref name="rewrap"/>.</summary>
    public byte[] Rewrite(StoreEntry entry, Func<byte[], byte[]> rewrap) => _rewrite(entry, rewrap);
}

/// <summary>Every kind of record that holds sealed secrets. A new kind of secret is added here, once.</summary>
public static class SealedRecords
{
    public static readonly SealedRecordKind Certificates = new(
        "certificate", StoreKeys.CertificatesPrefix,
        entry => CoreJson.Deserialize<CertificateRecord>(entry).SealedKey is { } key ? [key] : [],
        (entry, rewrap) =>
        {
            var record = CoreJson.Deserialize<CertificateRecord>(entry);
            return CoreJson.Serialize(record.SealedKey is null ? record : record with { SealedKey = rewrap(record.SealedKey) });
        });

    public static readonly SealedRecordKind LocalCa = new(
        "local CA", StoreKeys.Root + "ca/",
        entry => [CoreJson.Deserialize<LocalCaRecord>(entry).SealedKey],
        (entry, rewrap) =>
        {
            var record = CoreJson.Deserialize<LocalCaRecord>(entry);
            return CoreJson.Serialize(record with { SealedKey = rewrap(record.SealedKey) });
        });

    public static readonly SealedRecordKind TlsAlpnChallenges = new(
        "TLS-ALPN-01 challenge", StoreKeys.TlsAlpn01Prefix,
        entry => [CoreJson.Deserialize<TlsAlpnChallengeRecord>(entry).SealedKey],
        (entry, rewrap) =>
        {
            var record = CoreJson.Deserialize<TlsAlpnChallengeRecord>(entry);
            return CoreJson.Serialize(record with { SealedKey = rewrap(record.SealedKey) });
        });

    public static readonly SealedRecordKind AcmeAccounts = new(
        "ACME account", StoreKeys.AcmeAccountsPrefix,
        entry => CoreJson.Deserialize<AcmeAccountRecord>(entry) is var record && record.PendingSealedKey is { } pending ? [record.SealedKey, pending] : [record.SealedKey],
        (entry, rewrap) =>
        {
            var record = CoreJson.Deserialize<AcmeAccountRecord>(entry);
            return CoreJson.Serialize(record with
            {
                SealedKey = rewrap(record.SealedKey),
                PendingSealedKey = record.PendingSealedKey is { } pending ? rewrap(pending) : null,
            });
        });

    /// <summary>Sites whose backend client certificate has a sealed key (re-encrypt with mutual TLS to backends).</summary>
    public static readonly SealedRecordKind Sites = new(
        "site backend client key", StoreKeys.SitesPrefix,
        entry => CoreJson.Deserialize<Gatehouse.Sites.SiteDefinition>(entry).BackendTls?.SealedClientKey is { } key ? [key] : [],
        (entry, rewrap) =>
        {
            var site = CoreJson.Deserialize<Gatehouse.Sites.SiteDefinition>(entry);
            return CoreJson.Serialize(site.BackendTls?.SealedClientKey is { } key ? site with { BackendTls = site.BackendTls with { SealedClientKey = rewrap(key) } } : site);
        });

    public static IReadOnlyList<SealedRecordKind> All { get; } = [LocalCa, Certificates, TlsAlpnChallenges, AcmeAccounts, Sites];
}
