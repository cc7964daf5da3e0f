using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Certificates;
using Gatehouse.Keys;
using Gatehouse.Sites;
using Gatehouse.Storage;
using Gatehouse.Storage.Sqlite;

/// <summary>
/// The certificates every terminator serves: one ECDSA P-256 root → one intermediate → one leaf per name (its own
/// key), name 0 being <c>localhost</c> (the load tools resolve the URL's host name and send it as SNI) and name i
/// <c>h{i}.edge.test</c>. Each leaf is one PEM file, <c>certs/{i}.pem</c> = leaf + intermediate + PKCS#8 key, which
/// nginx (certificate and key from the same file), HAProxy (crt-list) and Caddy (load_files) read as is; Gatehouse gets
/// the same chain and key in certificate records of its store, the key sealed with its master key.
/// </summary>
internal sealed class Pki : IDisposable
{
    private static readonly TimeSpan Validity = TimeSpan.FromDays(30);
    private readonly ECDsa _intermediateKey;
    private readonly X509Certificate2 _intermediate;
    private readonly string _intermediatePem;
    private int _made;

    private Pki(string directory, X509Certificate2 root, ECDsa intermediateKey, X509Certificate2 intermediate)
    {
        Directory = directory;
        Root = root;
        RootPath = Path.Combine(directory, "root.pem");
        _intermediateKey = intermediateKey;
        _intermediate = intermediate;
        _intermediatePem = intermediate.ExportCertificatePem();
    }

    public string Directory { get; }

    public X509Certificate2 Root { get; }

    public string RootPath { get; }

    public static Pki Create(string directory)
    {
        System.IO.Directory.CreateDirectory(Path.Combine(directory, "certs"));
        var now = DateTimeOffset.UtcNow;
        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var rootRequest = new CertificateRequest("CN=Gatehouse edge bench root", rootKey, HashAlgorithmName.SHA256);
        AddCaExtensions(rootRequest, pathLength: 1);
        using var rootWithKey = rootRequest.CreateSelfSigned(now.AddHours(-1), now + Validity);
        var root = X509CertificateLoader.LoadCertificate(rootWithKey.RawData);
        var intermediateKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var intermediateRequest = new CertificateRequest("CN=Gatehouse edge bench intermediate", intermediateKey, HashAlgorithmName.SHA256);
        AddCaExtensions(intermediateRequest, pathLength: 0);
        intermediateRequest.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(rootWithKey, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        using var intermediate = intermediateRequest.Create(rootWithKey, now.AddHours(-1), now + Validity, RandomNumberGenerator.GetBytes(16));
        var pki = new Pki(directory, root, intermediateKey, X509CertificateLoader.LoadCertificate(intermediate.RawData));
        File.WriteAllText(pki.RootPath, root.ExportCertificatePem() + "\n");
        return pki;
    }

    public static string Name(int index) => index == 0 ? "localhost" : $"h{index}.edge.test";

    public string PemPath(int index) => Path.Combine(Directory, "certs", $"{index}.pem");

    /// <summary>Makes the leaves 0..count-1 that do not exist yet.</summary>
    public void Ensure(int count)
    {
        for (; _made < count; _made++)
        {
            WriteLeaf(_made);
        }
    }

    /// <summary>Writes a new leaf (new key, new serial) for name <paramref name="index"/> over its file (by a rename);
    /// returns its serial.</summary>
    public string WriteLeaf(int index)
    {
        var name = Name(index);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var leaf = BenchPki.CreateServerLeaf(name, key, _intermediate, X509SignatureGenerator.CreateForECDsa(_intermediateKey), Validity);
        var path = PemPath(index);
        File.WriteAllText(path + ".tmp", leaf.ExportCertificatePem() + "\n" + _intermediatePem + "\n" + key.ExportPkcs8PrivateKeyPem() + "\n");
        File.Move(path + ".tmp", path, overwrite: true);
        return leaf.SerialNumber;
    }

    /// <summary>The file's leaf (first certificate).</summary>
    public X509Certificate2 Leaf(int index) => X509Certificate2.CreateFromPem(ChainPem(File.ReadAllText(PemPath(index))));

    /// <summary>
    /// A fresh Gatehouse data directory holding the master key, key ring and a SQLite store with <paramref name="count"/>
    /// sites (name i → <paramref name="backend"/>) and their certificate records, each holding exactly the chain and
    /// key of <c>certs/{i}.pem</c>. As bench/keys/startup seeds (integration tests' BulkStore), but with one certificate
    /// per site. The records' issuer is the local CA, so a renewal through the admin API reissues from Gatehouse's CA.
    /// </summary>
    public async Task SeedGatehouseAsync(string dataDirectory, int count, string backend)
    {
        System.IO.Directory.CreateDirectory(dataDirectory);
        await using var store = SqliteStore.Open(Path.Combine(dataDirectory, "gatehouse.db"));
        using var provider = SoftwareKeyFileProvider.OpenOrCreate("local", Path.Combine(dataDirectory, "master.key"));
        using var keyRing = await KeyRingStore.OpenOrCreateAsync(store, new Dictionary<string, IMasterKeyProvider> { ["local"] = provider }, "local", TimeProvider.System, default);
        var cipher = new EnvelopeCipher(keyRing);
        const int sitesPerTransaction = StoreLimits.MaxOperations / 3;
        for (var first = 0; first < count; first += sitesPerTransaction)
        {
            var transaction = new StoreTransaction();
            for (var i = first; i < Math.Min(count, first + sitesPerTransaction); i++)
            {
                var host = Name(i);
                var pem = File.ReadAllText(PemPath(i));
                using var leaf = X509Certificate2.CreateFromPem(ChainPem(pem));
                using var key = ECDsa.Create();
                key.ImportFromPem(pem); // takes the file's one key block, skips the certificates
                var pkcs8 = key.ExportPkcs8PrivateKey();
                var notBefore = new DateTimeOffset(leaf.NotBefore.ToUniversalTime());
                var notAfter = new DateTimeOffset(leaf.NotAfter.ToUniversalTime());
                var record = new CertificateRecord
                {
                    Id = host,
                    Names = [host],
                    Issuer = LocalCertificateAuthority.IssuerName,
                    ChainPem = ChainPem(pem),
                    SealedKey = cipher.Seal(StoreKeys.Certificate(host), pkcs8),
                    Serial = leaf.SerialNumber,
                    NotBefore = notBefore,
                    NotAfter = notAfter,
                    RenewAfter = RenewalPolicy.RenewAfter(notBefore, notAfter),
                    Status = CertificateStatus.Valid,
                };
                CryptographicOperations.ZeroMemory(pkcs8);
                var site = new SiteDefinition { Id = host, Hosts = [host], Backends = [backend] };
                SiteRepository.AddNew(transaction, site).Put(StoreKeys.Certificate(host), CoreJson.Serialize(record));
            }

            if (!(await store.CommitAsync(transaction, default)).Succeeded)
            {
                throw new InvalidOperationException($"{dataDirectory} already holds sites; seed an empty store.");
            }
        }
    }

    public void Dispose()
    {
        _intermediateKey.Dispose();
        _intermediate.Dispose();
        Root.Dispose();
    }

    /// <summary>The certificates of a leaf + intermediate + key file, in order, without the key.</summary>
    private static string ChainPem(string pem)
    {
        var chain = new System.Text.StringBuilder();
        var rest = pem.AsSpan();
        while (PemEncoding.TryFind(rest, out var fields))
        {
            if (rest[fields.Label].SequenceEqual("CERTIFICATE"))
            {
                chain.Append(rest[fields.Location]).Append('\n');
            }

            rest = rest[fields.Location.End..];
        }

        return chain.ToString();
    }

    private static void AddCaExtensions(CertificateRequest request, int pathLength)
    {
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, pathLength, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
    }
}
