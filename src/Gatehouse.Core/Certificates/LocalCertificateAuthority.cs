using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Keys;
using Gatehouse.Storage;
using Microsoft.Extensions.Logging;

namespace Gatehouse.Certificates;

/// <summary>The local CA's settings.</summary>
public sealed record LocalCaOptions
{
    /// <summary>Lifetime of issued leaf certificates.</summary>
    public TimeSpan LeafLifetime { get; init; } = TimeSpan.FromDays(7);

    public TimeSpan RootLifetime { get; init; } = TimeSpan.FromDays(365 * 20);

    public TimeSpan IntermediateLifetime { get; init; } = TimeSpan.FromDays(365 * 5);
}

/// <summary>A local CA certificate and its sealed key, as stored.</summary>
public sealed record LocalCaRecord(string CertificatePem, byte[] SealedKey);

/// <summary>
/// The built-in CA: a root (ECDSA P-384) and an intermediate (ECDSA P-256) created once per store, keys sealed like
/// every other key, and leaf certificates signed by the intermediate. Several instances starting together agree
/// on one CA: creation is one conditional write.
/// </summary>
public sealed class LocalCertificateAuthority(IStore store, EnvelopeCipher cipher, TimeProvider time, LocalCaOptions options, ILogger<LocalCertificateAuthority> logger)
    : ICertificateIssuer
{
    /// <summary>The issuer name sites use (and the default when a site names none).</summary>
    public const string IssuerName = "local";

    private static readonly TimeSpan ClockSkewAllowance = TimeSpan.FromMinutes(5);

    public string Name => IssuerName;

    public LocalCaOptions Options => options;

    /// <summary>Creates the root and intermediate when the store has none; returns the root.</summary>
    public async Task<X509Certificate2> EnsureCreatedAsync(CancellationToken cancellationToken)
    {
        if (await store.GetAsync(StoreKeys.LocalCaRoot, cancellationToken) is { } existing)
        {
            return X509Certificate2.CreateFromPem(CoreJson.Deserialize<LocalCaRecord>(existing).CertificatePem);
        }

        var now = time.GetUtcNow();
        var label = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        using var root = CreateCaCertificate($"CN=Gatehouse Local Root CA {label}, O=Gatehouse", rootKey, null, null, now - ClockSkewAllowance, now + options.RootLifetime, pathLength: 1);
        using var intermediateKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var intermediate = CreateCaCertificate($"CN=Gatehouse Local Intermediate CA {label}, O=Gatehouse", intermediateKey, root, rootKey, now - ClockSkewAllowance, now + options.IntermediateLifetime, pathLength: 0);

        var rootRecord = new LocalCaRecord(root.ExportCertificatePem(), Seal(StoreKeys.LocalCaRoot, rootKey));
        var intermediateRecord = new LocalCaRecord(intermediate.ExportCertificatePem(), Seal(StoreKeys.LocalCaIntermediate, intermediateKey));
        var result = await store.CommitAsync(
            new StoreTransaction()
                .If(StoreCondition.Absent(StoreKeys.LocalCaRoot))
                .If(StoreCondition.Absent(StoreKeys.LocalCaIntermediate))
                .Put(StoreKeys.LocalCaRoot, CoreJson.Serialize(rootRecord))
                .Put(StoreKeys.LocalCaIntermediate, CoreJson.Serialize(intermediateRecord)),
            cancellationToken);

        if (!result.Succeeded)
        {
            // Another instance created it first: use that one. (A store with an intermediate but no root is damaged;
            // say so rather than loop.)
            var created = await store.GetAsync(StoreKeys.LocalCaRoot, cancellationToken)
                ?? throw new InvalidOperationException($"The store has a local CA intermediate but no root ('{StoreKeys.LocalCaRoot}'); restore it from a backup.");
            return X509Certificate2.CreateFromPem(CoreJson.Deserialize<LocalCaRecord>(created).CertificatePem);
        }

        LocalCaLog.Created(logger, root.Subject, root.Thumbprint, root.NotAfter);
        return X509Certificate2.CreateFromPem(rootRecord.CertificatePem);
    }

    /// <summary>The root certificate, or null before <see cref="EnsureCreatedAsync"/>.</summary>
    public async Task<X509Certificate2?> GetRootAsync(CancellationToken cancellationToken) =>
        await store.GetAsync(StoreKeys.LocalCaRoot, cancellationToken) is { } entry
            ? X509Certificate2.CreateFromPem(CoreJson.Deserialize<LocalCaRecord>(entry).CertificatePem)
            : null;

    /// <inheritdoc />
    public async Task<IssuedChain> IssueAsync(IssuanceRequest request, CancellationToken cancellationToken)
    {
        CertificateRequest csr;
        try
        {
            csr = CertificateRequest.LoadSigningRequest(request.CertificateSigningRequestDer, HashAlgorithmName.SHA256, CertificateRequestLoadOptions.Default);
        }
        catch (CryptographicException ex)
        {
            throw new IssuanceException($"The certificate signing request for '{request.CertificateId}' is invalid: {ex.Message}", retryable: false, innerException: ex);
        }

        var now = time.GetUtcNow();
        var record = await CurrentIntermediateAsync(now, cancellationToken);
        using var intermediate = X509Certificate2.CreateFromPem(record.CertificatePem);
        using var intermediateKey = OpenKey(StoreKeys.LocalCaIntermediate, record.SealedKey);
        var notBefore = now - ClockSkewAllowance;
        var notAfter = now + options.LeafLifetime;

        var firstName = request.Names[0];
        var subject = firstName.Length <= 64 ? new X500DistinguishedName("CN=" + firstName) : new X500DistinguishedName("");
        var leaf = new CertificateRequest(subject, csr.PublicKey, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var name in request.Names)
        {
            if (IPAddress.TryParse(name, out var address))
            {
                san.AddIpAddress(address);
            }
            else
            {
                san.AddDnsName(name);
            }
        }

        leaf.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        leaf.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        leaf.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        leaf.CertificateExtensions.Add(san.Build(critical: subject.RawData.Length <= 2));
        leaf.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(csr.PublicKey, false));
        leaf.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(intermediate, includeKeyIdentifier: true, includeIssuerAndSerial: false));

        using var issued = leaf.Create(intermediate.SubjectName, X509SignatureGenerator.CreateForECDsa(intermediateKey), notBefore, notAfter, NewSerial());
        return new IssuedChain(issued.ExportCertificatePem() + "\n" + record.CertificatePem);
    }

    /// <summary>The intermediate to sign with; replaced by a new one (signed by the root) when it has less than two
    /// leaf lifetimes left, so every leaf gets its full lifetime and issuance never stops at its expiry.</summary>
    private async Task<LocalCaRecord> CurrentIntermediateAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        var entry = await store.GetAsync(StoreKeys.LocalCaIntermediate, cancellationToken)
            ?? throw new IssuanceException("The local CA has not been created yet.", retryable: true);
        var record = CoreJson.Deserialize<LocalCaRecord>(entry);
        using (var current = X509Certificate2.CreateFromPem(record.CertificatePem))
        {
            if (current.NotAfter.ToUniversalTime() - now.UtcDateTime > 2 * options.LeafLifetime)
            {
                return record;
            }
        }

        var rootEntry = await store.GetAsync(StoreKeys.LocalCaRoot, cancellationToken)
            ?? throw new IssuanceException("The local CA's root is missing from the store.", retryable: false);
        var rootRecord = CoreJson.Deserialize<LocalCaRecord>(rootEntry);
        using var root = X509Certificate2.CreateFromPem(rootRecord.CertificatePem);
        if (root.NotAfter.ToUniversalTime() - now.UtcDateTime < 2 * options.LeafLifetime)
        {
            throw new IssuanceException($"The local CA's root expires at {root.NotAfter:u}; create a new local CA.", retryable: false);
        }

        using var rootKey = OpenKey(StoreKeys.LocalCaRoot, rootRecord.SealedKey);
        using var newKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var label = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        using var next = CreateCaCertificate($"CN=Gatehouse Local Intermediate CA {label}, O=Gatehouse", newKey, root, rootKey, now - ClockSkewAllowance, now + options.IntermediateLifetime, pathLength: 0);
        var nextRecord = new LocalCaRecord(next.ExportCertificatePem(), Seal(StoreKeys.LocalCaIntermediate, newKey));
        var result = await store.CommitAsync(
            new StoreTransaction().If(StoreCondition.Unchanged(StoreKeys.LocalCaIntermediate, entry.ModRevision)).Put(StoreKeys.LocalCaIntermediate, CoreJson.Serialize(nextRecord)),
            cancellationToken);
        if (!result.Succeeded)
        {
            return await CurrentIntermediateAsync(now, cancellationToken); // another instance rotated it first
        }

        LocalCaLog.IntermediateRotated(logger, next.Subject, next.NotAfter);
        return nextRecord;
    }

    private X509Certificate2 CreateCaCertificate(string subject, ECDsa key, X509Certificate2? issuer, ECDsa? issuerKey, DateTimeOffset notBefore, DateTimeOffset notAfter, int pathLength)
    {
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA384);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, pathLength, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
        var ski = new X509SubjectKeyIdentifierExtension(request.PublicKey, false);
        request.CertificateExtensions.Add(ski);
        if (issuer is null || issuerKey is null)
        {
            return request.CreateSelfSigned(notBefore, notAfter);
        }

        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        if (notAfter > issuer.NotAfter)
        {
            notAfter = issuer.NotAfter;
        }

        return request.Create(issuer.SubjectName, X509SignatureGenerator.CreateForECDsa(issuerKey), notBefore, notAfter, NewSerial());
    }

    private byte[] Seal(string recordKey, ECDsa key)
    {
        var pkcs8 = key.ExportPkcs8PrivateKey();
        try
        {
            return cipher.Seal(recordKey, pkcs8);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(pkcs8);
        }
    }

    private ECDsa OpenKey(string recordKey, byte[] sealedKey)
    {
        using var pkcs8 = cipher.Open(recordKey, sealedKey);
        var key = ECDsa.Create();
        key.ImportPkcs8PrivateKey(pkcs8.Span, out _);
        return key;
    }

    /// <summary>A positive 128-bit serial (RFC 5280 §4.1.2.2: at most 20 octets, positive).</summary>
    internal static byte[] NewSerial()
    {
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] = (byte)((serial[0] & 0x7F) | 0x01);
        return serial;
    }
}

internal static partial class LocalCaLog
{
    [LoggerMessage(EventId = 2002, Level = LogLevel.Information, Message = "Rotated the local CA's intermediate: {Subject}, valid until {NotAfter:u}")]
    public static partial void IntermediateRotated(ILogger logger, string subject, DateTime notAfter);

    [LoggerMessage(EventId = 2001, Level = LogLevel.Information, Message = "Created the local CA {Subject} (SHA-1 {Thumbprint}), valid until {NotAfter:u}")]
    public static partial void Created(ILogger logger, string subject, string thumbprint, DateTime notAfter);
}
