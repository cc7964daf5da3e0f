using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Certificates;
using Gatehouse.Keys;
using Gatehouse.Sites;
using Gatehouse.Storage;

namespace Gatehouse.IntegrationTests.Infrastructure;

/// <summary>
/// Fills a store with many sites, each with a valid certificate record, the way the certificate manager leaves them:
/// site <c>hN.bulk.test</c> (its host claimed), and certificate <c>hN.bulk.test</c> for that name, whose key is sealed
/// for that record. All records share one real chain, a leaf for <c>*.bulk.test</c> from <see cref="BulkCertificate"/>'s
/// own root, but each has its own sealed copy of the key, so opening one costs what opening any real record costs.
/// Sites come with the records because the manager deletes certificates no site needs.
/// </summary>
/// <remarks>Used by the integration tests, the unit tests (linked) and bench/keys/startup.</remarks>
public static class BulkStore
{
    /// <summary>The domain every seeded name is under.</summary>
    public const string Domain = "bulk.test";

    /// <summary>Each site's transaction: the site, its host claim and its certificate.</summary>
    private const int OperationsPerSite = 3;

    /// <summary>The host name (= site and certificate id) of the <paramref name="index"/>-th seeded site.</summary>
    public static string Host(int index) => $"h{index}.{Domain}";

    /// <summary>Writes <paramref name="count"/> sites and certificate records, in transactions of at most
    /// <see cref="StoreLimits.MaxOperations"/> operations, each conditional on its keys being absent.</summary>
    public static async Task SeedAsync(IStore store, EnvelopeCipher cipher, BulkCertificate certificate, int count, CancellationToken cancellationToken = default)
    {
        var sitesPerTransaction = StoreLimits.MaxOperations / OperationsPerSite;
        for (var first = 0; first < count; first += sitesPerTransaction)
        {
            var transaction = new StoreTransaction();
            for (var i = first; i < Math.Min(count, first + sitesPerTransaction); i++)
            {
                var host = Host(i);
                var site = new SiteDefinition { Id = host, Hosts = [host], Backends = ["http://127.0.0.1:9"] };
                var record = certificate.RecordFor(host, cipher);
                SiteRepository.AddNew(transaction, site).Put(StoreKeys.Certificate(host), CoreJson.Serialize(record));
            }

            if (!(await store.CommitAsync(transaction, cancellationToken)).Succeeded)
            {
                throw new InvalidOperationException($"The store already holds sites from {Host(first)} on; seed an empty store.");
            }
        }
    }
}

/// <summary>A root and a leaf for <c>*.bulk.test</c> signed by it (ECDSA P-256, 90 days), with the leaf's key.</summary>
public sealed class BulkCertificate : IDisposable
{
    private readonly byte[] _pkcs8;

    private BulkCertificate(X509Certificate2 root, X509Certificate2 leaf, byte[] pkcs8)
    {
        Root = root;
        ChainPem = leaf.ExportCertificatePem();
        Serial = leaf.SerialNumber;
        NotBefore = new DateTimeOffset(leaf.NotBefore.ToUniversalTime());
        NotAfter = new DateTimeOffset(leaf.NotAfter.ToUniversalTime());
        _pkcs8 = pkcs8;
        leaf.Dispose();
    }

    /// <summary>The root clients trust to accept the leaf.</summary>
    public X509Certificate2 Root { get; }

    public string ChainPem { get; }

    public string Serial { get; }

    public DateTimeOffset NotBefore { get; }

    public DateTimeOffset NotAfter { get; }

    public static BulkCertificate Create()
    {
        var now = DateTimeOffset.UtcNow;
        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var rootRequest = new CertificateRequest("CN=Gatehouse Bulk Test Root", rootKey, HashAlgorithmName.SHA256);
        rootRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        rootRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        var root = rootRequest.CreateSelfSigned(now.AddMinutes(-5), now.AddYears(1));

        using var leafKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var leafRequest = new CertificateRequest("CN=*." + BulkStore.Domain, leafKey, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("*." + BulkStore.Domain);
        leafRequest.CertificateExtensions.Add(san.Build());
        leafRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        leafRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        var leaf = leafRequest.Create(root, now.AddMinutes(-5), now.AddDays(90), RandomNumberGenerator.GetBytes(16));
        return new BulkCertificate(root, leaf, leafKey.ExportPkcs8PrivateKey());
    }

    /// <summary>A valid record for <paramref name="host"/> (with the id <paramref name="id"/>, the host when not
    /// given) with its own sealed copy of the key.</summary>
    public CertificateRecord RecordFor(string host, EnvelopeCipher cipher, string? id = null) => new()
    {
        Id = id ?? host,
        Names = [host],
        Issuer = LocalCertificateAuthority.IssuerName,
        ChainPem = ChainPem,
        SealedKey = cipher.Seal(StoreKeys.Certificate(id ?? host), _pkcs8),
        Serial = Serial,
        NotBefore = NotBefore,
        NotAfter = NotAfter,
        RenewAfter = RenewalPolicy.RenewAfter(NotBefore, NotAfter),
        Status = CertificateStatus.Valid,
    };

    /// <summary>Client chain policy that trusts this root only.</summary>
    public X509ChainPolicy TrustOnlyRoot()
    {
        var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
        policy.CustomTrustStore.Add(Root);
        return policy;
    }

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(_pkcs8);
        Root.Dispose();
    }
}
