using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Certificates;
using Gatehouse.Edge.Tls;
using Gatehouse.Keys;
using Gatehouse.Storage;
using Gatehouse.Storage.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gatehouse.Tests.Certificates;

/// <summary>The local CA against a real SQLite store, and the SNI table the edge builds from what it issues.</summary>
public sealed class LocalCertificateAuthorityTests : IAsyncLifetime
{
    private readonly TempDirectory _directory = new();
    private SqliteStore _store = null!;
    private SoftwareMasterKey _master = null!;
    private EnvelopeCipher _cipher = null!;
    private LocalCertificateAuthority _ca = null!;

    public Task InitializeAsync()
    {
        _store = SqliteStore.Open(Path.Combine(_directory.Path, "store.db"));
        _master = new SoftwareMasterKey("test", 1, RandomNumberGenerator.GetBytes(32));
        _cipher = new EnvelopeCipher(new MasterKeyRing([_master], _master));
        _ca = new LocalCertificateAuthority(_store, _cipher, TimeProvider.System, new LocalCaOptions { LeafLifetime = TimeSpan.FromHours(6) }, NullLogger<LocalCertificateAuthority>.Instance);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        _master.Dispose();
        _directory.Dispose();
    }

    [Fact]
    public async Task EnsureCreated_TwiceOrConcurrently_KeepsOneRoot()
    {
        var roots = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => _ca.EnsureCreatedAsync(default)));
        Assert.Single(roots.Select(r => r.Thumbprint).Distinct());
        Assert.Equal(roots[0].Thumbprint, (await _ca.EnsureCreatedAsync(default)).Thumbprint);
    }

    [Fact]
    public async Task Issue_Leaf_ChainsToTheRootWithTheRequestedNamesAndLifetime()
    {
        var root = await _ca.EnsureCreatedAsync(default);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var chain = await _ca.IssueAsync(new IssuanceRequest("app.example", ["app.example", "*.apps.example"], Csr(key, "app.example")), default);
        var certificates = new X509Certificate2Collection();
        certificates.ImportFromPem(chain.ChainPem);
        Assert.Equal(2, certificates.Count);
        var leaf = certificates[0];
        var san = leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        Assert.Equal(["app.example", "*.apps.example"], san.EnumerateDnsNames());
        Assert.InRange((leaf.NotAfter - leaf.NotBefore).TotalMinutes, 365 - 0.1, 365 + 0.1); // 6 h + 5 min backdating
        Assert.Equal(key.ExportSubjectPublicKeyInfo(), leaf.GetECDsaPublicKey()!.ExportSubjectPublicKeyInfo());

        using var x509 = new X509Chain();
        x509.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        x509.ChainPolicy.CustomTrustStore.Add(root);
        x509.ChainPolicy.ExtraStore.Add(certificates[1]);
        x509.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        x509.ChainPolicy.ApplicationPolicy.Add(new Oid("1.3.6.1.5.5.7.3.1"));
        Assert.True(x509.Build(leaf), string.Join("; ", x509.ChainStatus.Select(s => s.StatusInformation)));
    }

    [Fact]
    public async Task Issue_TamperedCsr_IsRefusedAsNotRetryable()
    {
        await _ca.EnsureCreatedAsync(default);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var csr = Csr(key, "app.example");
        csr[^5] ^= 0x40;
        var ex = await Assert.ThrowsAsync<IssuanceException>(() => _ca.IssueAsync(new IssuanceRequest("app.example", ["app.example"], csr), default));
        Assert.False(ex.Retryable);
    }

    [Fact]
    public async Task CertificateCache_SelectsByServerName_ExactWildcardCaseAndUnknown()
    {
        await _ca.EnsureCreatedAsync(default);
        var records = new List<CertificateRecord>
        {
            await IssueRecordAsync("example.com", ["example.com", "www.example.com"]),
            await IssueRecordAsync("wild.example.com", ["*.example.com"]),
            await IssueRecordAsync("deep", ["*.b.example.com", "x.b.example.com"]),
            await IssueRecordAsync("_admin", ["localhost"]),
        };
        var snapshot = new MirrorSnapshot<CertificateRecord>(
            System.Collections.Immutable.ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal, records.Select(r => KeyValuePair.Create(StoreKeys.Certificate(r.Id), new MirrorItem<CertificateRecord>(r, 1)))),
            7);
        var cache = new CertificateCache(_cipher, NullLogger<CertificateCache>.Instance);
        cache.Apply(snapshot);

        Assert.Equal(3, cache.Count);
        Assert.Equal(7, cache.Revision);
        Assert.Equal("example.com", Match(cache, "example.com"));
        Assert.Equal("example.com", Match(cache, "WWW.EXAMPLE.COM"));
        Assert.Equal("wild.example.com", Match(cache, "api.example.com"));
        Assert.Equal("deep", Match(cache, "y.b.example.com"));
        Assert.Equal("deep", Match(cache, "x.b.example.com"));
        Assert.Null(Match(cache, "a.c.example.com"));
        Assert.Null(Match(cache, "localhost")); // internal certificates are not served to the edge
        Assert.NotNull(cache.GetInternal("_admin")?.Options); // internal certificates are prepared at once
        Assert.True(cache.TryMatch("example.com", out var served));
        Assert.Null(served.Options); // site certificates on their first handshake
        Assert.True(await cache.PrepareAsync(served));
        Assert.NotNull(served.Options?.ServerCertificateContext);
        Assert.True(served.Leaf!.HasPrivateKey);
    }

    [Fact]
    public async Task CertificateCache_RecordWithTamperedKey_CannotBePreparedAndTheOthersCan()
    {
        await _ca.EnsureCreatedAsync(default);
        var good = await IssueRecordAsync("good.example", ["good.example"]);
        var bad = await IssueRecordAsync("bad.example", ["bad.example"]);
        bad = bad with { SealedKey = [.. bad.SealedKey!.Take(bad.SealedKey!.Length - 1), (byte)(bad.SealedKey![^1] ^ 1)] };
        var cache = new CertificateCache(_cipher, NullLogger<CertificateCache>.Instance);
        cache.Apply(new MirrorSnapshot<CertificateRecord>(
            System.Collections.Immutable.ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal, new[] { good, bad }.Select(r => KeyValuePair.Create(StoreKeys.Certificate(r.Id), new MirrorItem<CertificateRecord>(r, 1)))),
            2));
        Assert.True(cache.TryMatch("good.example", out var goodServed));
        Assert.True(await cache.PrepareAsync(goodServed));
        Assert.True(cache.TryMatch("bad.example", out var badServed));
        Assert.False(await cache.PrepareAsync(badServed));
        Assert.Contains("/gatehouse/v1/certs/bad.example", badServed.Failure, StringComparison.Ordinal);
    }

    private static string? Match(CertificateCache cache, string name) => cache.TryMatch(name, out var c) ? c.Id : null;

    private async Task<CertificateRecord> IssueRecordAsync(string id, string[] names)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var chain = await _ca.IssueAsync(new IssuanceRequest(id, names, Csr(key, names[0])), default);
        var leaf = X509Certificate2.CreateFromPem(chain.ChainPem);
        return new CertificateRecord
        {
            Id = id,
            Names = names,
            Issuer = "local",
            ChainPem = chain.ChainPem,
            SealedKey = _cipher.Seal(StoreKeys.Certificate(id), key.ExportPkcs8PrivateKey()),
            Serial = leaf.SerialNumber,
            Status = CertificateStatus.Valid,
        };
    }

    private static byte[] Csr(ECDsa key, string name) =>
        new CertificateRequest("CN=" + name, key, HashAlgorithmName.SHA256).CreateSigningRequest();
}
