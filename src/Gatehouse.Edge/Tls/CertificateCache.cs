using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Acme;
using Gatehouse.Certificates;
using Gatehouse.Keys;
using Gatehouse.Sites;
using Gatehouse.Storage;
using Microsoft.Extensions.Logging;

namespace Gatehouse.Edge.Tls;

/// <summary>
/// A certificate the edge can serve: what its record says it covers, and, from the first handshake that needs it on,
/// its prepared TLS options. One instance per record content (chain, sealed key, names), shared by its connections.
/// </summary>
public sealed class ServedCertificate
{
    private CertificateRecord _record;
    private Task<Preparation>? _preparation;
    private Native.OpenSslCertificate? _openSsl;
    private string? _openSslFailure;

    internal ServedCertificate(string recordKey, CertificateRecord record)
    {
        RecordKey = recordKey;
        _record = record;
        Id = record.Id;
        Serial = record.Serial ?? "";
        Names = record.Names;
        NotAfter = record.NotAfter ?? DateTimeOffset.MinValue;
        Feature = new ServedCertificateFeature(this);
    }

    /// <summary>The connection feature that carries this certificate from the SNI gate to the handshake.</summary>
    public ServedCertificateFeature Feature { get; }

    /// <summary>The certificate (= site) id.</summary>
    public string Id { get; }

    /// <summary>The leaf's serial number as the record gives it (checked against the chain when prepared).</summary>
    public string Serial { get; }

    /// <summary>The names the record says the chain covers; the SNI table serves the certificate for these.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>The end of the leaf's validity as the record gives it.</summary>
    public DateTimeOffset NotAfter { get; }

    /// <summary>The leaf, with its private key; null until prepared, and when it cannot be prepared.</summary>
    public X509Certificate2? Leaf => Prepared?.Leaf;

    /// <summary>The chain's intermediates (instances shared with the other certificates of the same issuer); null until
    /// prepared, and when it cannot be prepared.</summary>
    internal X509Certificate2Collection? Intermediates => Prepared?.Intermediates;

    /// <summary>Server options for .NET's TLS (certificate context with chain, protocols, ALPN), shared by handshakes and
    /// made by the first that asks; null until prepared, and when it cannot be prepared.</summary>
    public SslServerAuthenticationOptions? Options => Prepared?.Options;

    /// <summary>Why the certificate cannot be served, once its preparation found out; null otherwise.</summary>
    public string? Failure => Prepared?.Failure;

    internal string RecordKey { get; }

    internal CertificateRecord Record => Volatile.Read(ref _record);

    private Preparation? Prepared => Volatile.Read(ref _preparation) is { IsCompletedSuccessfully: true } done ? done.Result : null;

    /// <summary>Takes <paramref name="record"/> as this certificate's record when it has the same content (a record
    /// rewritten for its status only keeps its prepared context); false when the record needs a new instance.</summary>
    internal bool TryAdopt(string recordKey, CertificateRecord record)
    {
        var current = Record;
        if (ReferenceEquals(current, record))
        {
            return true;
        }

        if (!string.Equals(RecordKey, recordKey, StringComparison.Ordinal)
            || !string.Equals(current.Serial, record.Serial, StringComparison.Ordinal)
            || current.NotAfter != record.NotAfter
            || !current.Names.SequenceEqual(record.Names, StringComparer.Ordinal)
            || !string.Equals(current.ChainPem, record.ChainPem, StringComparison.Ordinal)
            || !current.SealedKey.AsSpan().SequenceEqual(record.SealedKey))
        {
            return false;
        }

        Volatile.Write(ref _record, record); // same content: let the old record object go
        return true;
    }

    /// <summary>
    /// What the edge's own TLS engine gives this certificate's connections (leaf, key, chain, session-id context), made
    /// from the prepared certificate by the first handshake that asks and kept with this instance; null before
    /// preparation and when OpenSSL refuses it (<paramref name="failure"/> then says why, and is set once, for one log
    /// line).
    /// </summary>
    internal Native.OpenSslCertificate? GetOpenSslCertificate(Native.OpenSslServerContext context, out string? failure, out bool failedNow)
    {
        failedNow = false;
        failure = Volatile.Read(ref _openSslFailure);
        if (Volatile.Read(ref _openSsl) is { } made)
        {
            return made;
        }

        if (failure is not null || Prepared is not { PublicLeaf: { } leaf, PrivateKey: { } key, Intermediates: { } intermediates })
        {
            return null;
        }

        Native.OpenSslCertificate created;
        try
        {
            created = Native.OpenSslCertificate.Create(context, leaf, key, intermediates);
        }
        catch (Exception ex) when (ex is CryptographicException or PlatformNotSupportedException)
        {
            failure = ex.Message;
            failedNow = Interlocked.CompareExchange(ref _openSslFailure, failure, null) is null;
            return null;
        }

        if (Interlocked.CompareExchange(ref _openSsl, created, null) is { } winner)
        {
            created.Dispose(); // a concurrent first handshake made it too
            return winner;
        }

        return created;
    }

    /// <summary>Runs <paramref name="prepare"/> once for this certificate, however many callers ask at the same time;
    /// later callers get the first one's result.</summary>
    internal Task<Preparation> PrepareOnce(Func<ServedCertificate, Preparation> prepare, bool offIoThreads = false)
    {
        if (Volatile.Read(ref _preparation) is { } existing)
        {
            return existing;
        }

        var published = new TaskCompletionSource<Preparation>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (Interlocked.CompareExchange(ref _preparation, published.Task, null) is { } winner)
        {
            return winner;
        }

        if (offIoThreads && !Thread.CurrentThread.IsThreadPoolThread)
        {
            // A connection's first handshake, on a runtime I/O thread (inline socket completions): the chain is parsed
            // and the key opened on the pool (milliseconds, more with an HSM), so the thread's other connections go on.
            ThreadPool.UnsafeQueueUserWorkItem(static state => state.Certificate.Complete(state.Published, state.Prepare, rethrow: false), (Certificate: this, Published: published, Prepare: prepare), preferLocal: false);
            return published.Task;
        }

        Complete(published, prepare, rethrow: true);
        return published.Task;
    }

    private void Complete(TaskCompletionSource<Preparation> published, Func<ServedCertificate, Preparation> prepare, bool rethrow)
    {
        try
        {
            published.SetResult(prepare(this));
        }
        catch (Exception ex)
        {
            published.SetException(ex); // waiters must not wait forever
            if (rethrow)
            {
                throw;
            }
        }
    }
}

/// <summary>
/// The outcome of preparing a certificate: the leaf, its private key and the intermediates (shared with the other
/// certificates of the same issuer), or why not. The leaf with its key attached and the .NET TLS options (whose
/// <see cref="SslStreamCertificateContext"/> builds a chain) are made by their first user only, since the OpenSSL engine
/// serves most certificates without them.
/// </summary>
internal sealed class Preparation
{
    private readonly Func<X509Certificate2, X509Certificate2Collection, SslServerAuthenticationOptions>? _makeOptions;
    private X509Certificate2? _leaf;
    private SslServerAuthenticationOptions? _options;

    private Preparation(X509Certificate2? publicLeaf, AsymmetricAlgorithm? privateKey, X509Certificate2Collection? intermediates, Func<X509Certificate2, X509Certificate2Collection, SslServerAuthenticationOptions>? makeOptions, string? failure)
    {
        PublicLeaf = publicLeaf;
        PrivateKey = privateKey;
        Intermediates = intermediates;
        _makeOptions = makeOptions;
        Failure = failure;
    }

    /// <summary>The leaf without its key.</summary>
    public X509Certificate2? PublicLeaf { get; }

    /// <summary>The leaf's private key (checked to be the leaf's).</summary>
    public AsymmetricAlgorithm? PrivateKey { get; }

    public X509Certificate2Collection? Intermediates { get; }

    public string? Failure { get; }

    /// <summary>The leaf with its private key attached, made on first use (concurrent first users may both make it; one
    /// is kept).</summary>
    public X509Certificate2? Leaf
    {
        get
        {
            if (Volatile.Read(ref _leaf) is { } made || PublicLeaf is null || PrivateKey is null)
            {
                return _leaf;
            }

            var copy = CertificateCache.Attach(PublicLeaf, PrivateKey);
            if (Interlocked.CompareExchange(ref _leaf, copy, null) is not null)
            {
                copy.Dispose();
            }

            return _leaf;
        }
    }

    /// <summary>The .NET TLS options, made on first use (concurrent first users may both make them; one is kept).</summary>
    public SslServerAuthenticationOptions? Options
    {
        get
        {
            if (Volatile.Read(ref _options) is { } made || Leaf is not { } leaf || Intermediates is null || _makeOptions is null)
            {
                return _options;
            }

            Interlocked.CompareExchange(ref _options, _makeOptions(leaf, Intermediates), null);
            return _options;
        }
    }

    public static Preparation Served(X509Certificate2 publicLeaf, AsymmetricAlgorithm privateKey, X509Certificate2Collection intermediates, Func<X509Certificate2, X509Certificate2Collection, SslServerAuthenticationOptions> makeOptions) =>
        new(publicLeaf, privateKey, intermediates, makeOptions, null);

    public static Preparation Failed(string failure) => new(null, null, null, null, failure);
}

/// <summary>
/// The edge's certificates. The table (exact names, one-level wildcards) is rebuilt off the handshake path from the
/// records alone whenever they change, and swapped in one reference write: no key is opened and no certificate
/// parsed then, so a store of any size loads in time proportional to its records. A site certificate is prepared
/// (chain parsed, key opened, TLS context built) by the first handshake that selects it, once, and kept until its
/// record changes; one that cannot be prepared is logged once and refused until its record changes. Internal
/// certificates (few) are prepared when their record arrives.
/// </summary>
public sealed class CertificateCache
{
    /// <summary>TLS 1.2 and 1.3 with AEAD suites and forward secrecy only.</summary>
    private static readonly CipherSuitesPolicy AeadOnly = new(
    [
        TlsCipherSuite.TLS_AES_128_GCM_SHA256,
        TlsCipherSuite.TLS_AES_256_GCM_SHA384,
        TlsCipherSuite.TLS_CHACHA20_POLY1305_SHA256,
        TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        TlsCipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]);

    private static readonly List<SslApplicationProtocol> Alpn = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11];

    private readonly EnvelopeCipher _cipher;

    /// <summary>Null when the process's OpenSSL defaults already are <see cref="AeadOnly"/>: then connections share one
    /// SSL_CTX per certificate and sessions resume (see <see cref="TlsProcessDefaults"/>).</summary>
    private readonly CipherSuitesPolicy? _cipherSuites;
    private readonly ILogger<CertificateCache> _logger;
    private readonly Func<ServedCertificate, Preparation> _prepare;
    private readonly Func<X509Certificate2, X509Certificate2Collection, SslServerAuthenticationOptions> _makeOptions;
    private readonly IntermediatePool _intermediates = new();
    private readonly Lock _rebuild = new();
    private volatile Table _table = new(new HostTable<ServedCertificate>([]), new(StringComparer.Ordinal), new(StringComparer.Ordinal), 0, 0);

    public CertificateCache(EnvelopeCipher cipher, ILogger<CertificateCache> logger)
    {
        _cipher = cipher;
        _logger = logger;
        _prepare = Prepare;
        _makeOptions = MakeOptions;
        _cipherSuites = TlsProcessDefaults.ServerDefaultsAreAeadOnly ? null : AeadOnly;
        if (_cipherSuites is null)
        {
            CertificateCacheLog.TlsDefaults(_logger, TlsProcessDefaults.Outcome ?? "set before start");
        }
        else
        {
            CertificateCacheLog.NoResumption(_logger, TlsProcessDefaults.Outcome ?? "not applied in this process");
        }
    }

    /// <summary>Whether TLS sessions can be resumed: the cipher policy comes from the process's defaults.</summary>
    public bool ResumesSessions => _cipherSuites is null;

    /// <summary>The store revision the current table reflects.</summary>
    public long Revision => _table.Revision;

    /// <summary>How many site certificates the table holds (prepared or not yet).</summary>
    public int Count => _table.ById.Count;

    /// <summary>Finds the certificate to present for an SNI name: exact name, then one-level wildcard.</summary>
    public bool TryMatch(ReadOnlySpan<char> serverName, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out ServedCertificate certificate) =>
        _table.Names.TryMatch(serverName, out certificate);

    /// <summary>An internal certificate (id starting with '_'), e.g. the admin listener's; always prepared. When a
    /// newer record of it cannot be prepared, the last one that could keeps being returned.</summary>
    public ServedCertificate? GetInternal(string id) => _table.Internal.GetValueOrDefault(id)?.Served;

    /// <summary>
    /// Prepares <paramref name="certificate"/> on first use (chain checked, key opened): concurrent first callers share
    /// one preparation, later callers get its result at once. False when it cannot be served (logged once).
    /// </summary>
    public ValueTask<bool> PrepareAsync(ServedCertificate certificate)
    {
        var preparation = certificate.PrepareOnce(_prepare, offIoThreads: true);
        return preparation.IsCompletedSuccessfully
            ? ValueTask.FromResult(preparation.Result.PublicLeaf is not null)
            : AwaitAsync(preparation);

        static async ValueTask<bool> AwaitAsync(Task<Preparation> preparation) => (await preparation).PublicLeaf is not null;
    }

    /// <summary>Builds a new table from a snapshot of certificate records and swaps it in. Site certificates whose
    /// record content did not change keep their instance (and their prepared context); the others start unprepared,
    /// and the replaced instances are left to the garbage collector (see docs/architecture.md). When the snapshot
    /// names the keys that changed since the last one, only those are looked at (the tables are copied, not rebuilt).</summary>
    public void Apply(MirrorSnapshot<CertificateRecord> snapshot)
    {
        lock (_rebuild)
        {
            var previous = _table;
            var table = (snapshot.ChangedKeys is { } changed ? ApplyChanges(previous, snapshot, changed) : null)
                ?? Rebuild(previous, snapshot);
            _table = table;
            CertificateCacheLog.Swapped(_logger, table.ById.Count, table.Internal.Count, snapshot.Revision);
        }
    }

    private Table Rebuild(Table previous, MirrorSnapshot<CertificateRecord> snapshot)
    {
        var sites = new Dictionary<string, ServedCertificate>(previous.ById.Count, StringComparer.Ordinal);
        var internals = new Dictionary<string, InternalSlot>(previous.Internal.Count, StringComparer.Ordinal);
        var names = new List<KeyValuePair<string, ServedCertificate>>(previous.NameCount);
        foreach (var (key, item) in snapshot.Items)
        {
            var record = item.Value;
            if (!record.HasChain)
            {
                continue;
            }

            if (record.IsInternal)
            {
                internals[record.Id] = ApplyInternal(key, record, previous.Internal.GetValueOrDefault(record.Id));
                continue;
            }

            var known = previous.ById.GetValueOrDefault(record.Id);
            var served = known is not null && known.TryAdopt(key, record) ? known : new ServedCertificate(key, record);
            sites[record.Id] = served;
            foreach (var name in served.Names)
            {
                names.Add(new(name, served));
            }
        }

        return new Table(new HostTable<ServedCertificate>(names), sites, internals, names.Count, snapshot.Revision);
    }

    /// <summary>The table with the changed site certificates replaced; null when only a rebuild gives the right table
    /// (an internal certificate changed, a record is not at its id's key, or names are claimed twice).</summary>
    private static Table? ApplyChanges(Table previous, MirrorSnapshot<CertificateRecord> snapshot, IReadOnlyCollection<string> changedKeys)
    {
        var sites = new Dictionary<string, ServedCertificate>(previous.ById, StringComparer.Ordinal);
        var released = new List<KeyValuePair<string, ServedCertificate>>();
        var claimed = new List<KeyValuePair<string, ServedCertificate>>();
        foreach (var key in changedKeys)
        {
            var id = StoreKeys.IdOf(key, StoreKeys.CertificatesPrefix);
            var record = snapshot.Items.TryGetValue(key, out var item) ? item.Value : null;
            if (CertificateRecord.IsInternalId(id) || (record is not null && record.Id != id))
            {
                return null;
            }

            var known = sites.GetValueOrDefault(id);
            var served = record is { HasChain: true } && known is not null && known.TryAdopt(key, record) ? known
                : record is { HasChain: true } ? new ServedCertificate(key, record)
                : null;
            if (ReferenceEquals(served, known))
            {
                continue;
            }

            if (known is not null)
            {
                sites.Remove(id);
                released.AddRange(known.Names.Select(name => KeyValuePair.Create(name, known)));
            }

            if (served is not null)
            {
                sites[id] = served;
                claimed.AddRange(served.Names.Select(name => KeyValuePair.Create(name, served)));
            }
        }

        return previous.Names.With(released, claimed) is { } names
            ? new Table(names, sites, previous.Internal, previous.NameCount - released.Count + claimed.Count, snapshot.Revision)
            : null;
    }

    /// <summary>Prepares a changed internal certificate now; keeps serving the previous one when it cannot be.</summary>
    private InternalSlot ApplyInternal(string key, CertificateRecord record, InternalSlot? known)
    {
        if (known is not null && known.Latest.TryAdopt(key, record))
        {
            return known;
        }

        var latest = new ServedCertificate(key, record);
        latest.PrepareOnce(_prepare);
        return new InternalSlot(latest, latest.Options is not null ? latest : known?.Served);
    }

    /// <summary>Parses the chain (intermediates from <see cref="_intermediates"/> when already known), checks it
    /// against the record and opens the sealed key. Failures are values (and one error log), never key material.</summary>
    private Preparation Prepare(ServedCertificate certificate)
    {
        var record = certificate.Record;
        X509Certificate2? leaf = null;
        AsymmetricAlgorithm? key = null;
        string? failure;
        try
        {
            var blocks = CertificateFields.SplitPem(record.ChainPem ?? "");
            failure = blocks.Count == 0 ? "its chain holds no certificate" : MismatchWithRecord(CertificateFields.Read(blocks[0]), certificate);
            if (failure is null)
            {
                leaf = X509CertificateLoader.LoadCertificate(blocks[0]);
            }

            if (failure is null && leaf is not null)
            {
                var intermediates = new X509Certificate2Collection();
                for (var i = 1; i < blocks.Count; i++)
                {
                    intermediates.Add(_intermediates.Get(blocks[i]));
                }

                using (var plaintext = _cipher.Open(certificate.RecordKey, record.SealedKey))
                {
                    key = PrivateKeyOf(leaf, plaintext.Span); // throws when the key is not the leaf's
                }

                return Preparation.Served(leaf, key, intermediates, _makeOptions);
            }
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException or FormatException)
        {
            // EnvelopeAuthenticationException is a CryptographicException and names the record, never key material.
            failure = ex.Message;
        }

        // Nothing is kept (the intermediates stay in the pool, which other certificates may share).
        leaf?.Dispose();
        key?.Dispose();
        CertificateCacheLog.Unusable(_logger, certificate.Id, certificate.Serial, failure ?? "unknown");
        return Preparation.Failed(failure ?? "unknown");
    }

    /// <summary>The leaf's private key from its PKCS#8 encoding, as an OpenSSL key on Linux (which the edge's TLS
    /// engine can hand to OpenSSL). Throws <see cref="CryptographicException"/> when it is not the leaf's key.</summary>
    private static AsymmetricAlgorithm PrivateKeyOf(X509Certificate2 leaf, ReadOnlySpan<byte> pkcs8)
    {
        var key = ImportKey(leaf, pkcs8);
        if (!key.ExportSubjectPublicKeyInfo().AsSpan().SequenceEqual(leaf.PublicKey.ExportSubjectPublicKeyInfo()))
        {
            key.Dispose();
            throw new CryptographicException("its sealed key is not the key of its chain's leaf");
        }

        return key;
    }

    /// <summary>A PKCS#8 key of the type the leaf's public key says (RSA or ECDSA), as an OpenSSL key on Linux.</summary>
    private static AsymmetricAlgorithm ImportKey(X509Certificate2 leaf, ReadOnlySpan<byte> pkcs8)
    {
        AsymmetricAlgorithm key = leaf.GetKeyAlgorithm() == RsaOid
            ? (OperatingSystem.IsLinux() ? new RSAOpenSsl() : RSA.Create())
            : (OperatingSystem.IsLinux() ? new ECDsaOpenSsl() : ECDsa.Create());
        try
        {
            key.ImportPkcs8PrivateKey(pkcs8, out _);
            return key;
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    /// <summary>A copy of <paramref name="leaf"/> with <paramref name="key"/> attached; throws when it is not the
    /// leaf's key.</summary>
    internal static X509Certificate2 Attach(X509Certificate2 leaf, AsymmetricAlgorithm key) => key switch
    {
        RSA rsa => leaf.CopyWithPrivateKey(rsa),
        ECDsa ecdsa => leaf.CopyWithPrivateKey(ecdsa),
        _ => throw new CryptographicException($"unexpected key type {key.GetType().Name}"),
    };

    /// <summary>The .NET TLS options of a prepared certificate (its chain built offline into the context), for
    /// SslStream: sites with client certificates, the admin listener, the <c>dotnet</c> engine.</summary>
    private SslServerAuthenticationOptions MakeOptions(X509Certificate2 leaf, X509Certificate2Collection intermediates) => new()
    {
        ServerCertificateContext = SslStreamCertificateContext.Create(leaf, intermediates, offline: true),
        EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        ApplicationProtocols = Alpn,
        CipherSuitesPolicy = _cipherSuites,
        ClientCertificateRequired = false,
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        AllowRenegotiation = false,
        AllowTlsResume = true,
    };

    /// <summary>The leaf with its PKCS#8 key attached: ECDSA or RSA, as the leaf's public key says.</summary>
    internal static X509Certificate2 WithPrivateKey(X509Certificate2 leaf, ReadOnlySpan<byte> pkcs8)
    {
        using var key = ImportKey(leaf, pkcs8);
        return Attach(leaf, key);
    }

    private const string RsaOid = "1.2.840.113549.1.1.1";

    /// <summary>What makes the chain's leaf not the one the record describes: another serial, or names its SAN does
    /// not cover (exactly, or by a one-level wildcard as RFC 6125 §6.4.3 allows; an IP address only by itself); null
    /// when it matches.</summary>
    private static string? MismatchWithRecord(CertificateFields leaf, ServedCertificate certificate)
    {
        if (!string.Equals(leaf.SerialNumber, certificate.Serial, StringComparison.OrdinalIgnoreCase))
        {
            return $"its chain's leaf has serial {leaf.SerialNumber}, the record says {certificate.Serial}";
        }

        var dnsNames = new List<KeyValuePair<string, string>>();
        var addresses = new HashSet<IPAddress>();
        if (leaf.SubjectAlternativeName is { } san)
        {
            foreach (var name in san.EnumerateDnsNames())
            {
                dnsNames.Add(new(name, name));
            }

            addresses.UnionWith(san.EnumerateIPAddresses());
        }

        var covered = new HostTable<string>(dnsNames);
        var missing = new List<string>();
        foreach (var name in certificate.Names)
        {
            if (IPAddress.TryParse(name, out var address) ? !addresses.Contains(address) : !covered.TryMatch(name, out _))
            {
                missing.Add(name);
            }
        }

        return missing.Count == 0 ? null : $"its leaf's subject alternative names do not cover {string.Join(", ", missing)}";
    }

    /// <summary>An internal certificate: the latest record's instance, and the one served (the latest when it could
    /// be prepared, else the last that could).</summary>
    private sealed record InternalSlot(ServedCertificate Latest, ServedCertificate? Served);

    private sealed record Table(
        HostTable<ServedCertificate> Names,
        Dictionary<string, ServedCertificate> ById,
        Dictionary<string, InternalSlot> Internal,
        int NameCount,
        long Revision);
}

internal static partial class CertificateCacheLog
{
    [LoggerMessage(EventId = 4001, Level = LogLevel.Debug, Message = "Certificate table swapped: {Sites} site certificates, {Internal} internal, at revision {Revision}")]
    public static partial void Swapped(ILogger logger, int sites, int @internal, long revision);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Debug, Message = "TLS defaults: {How}; AEAD suites only, TLS sessions are resumed")]
    public static partial void TlsDefaults(ILogger logger, string how);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Warning, Message = "TLS defaults: {How}. The process's OpenSSL defaults allow more than AEAD suites, so the edge limits them per connection, which turns TLS session resumption off and makes handshakes slower (see docs/edge-modes.md)")]
    public static partial void NoResumption(ILogger logger, string how);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Error, Message = "Certificate {CertificateId} (serial {Serial}) cannot be served: {Reason}")]
    public static partial void Unusable(ILogger logger, string certificateId, string serial, string reason);
}
