using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Keys;
using Gatehouse.Sites;
using Gatehouse.Storage;

namespace Gatehouse.Tests.Sites;

public sealed class BackendSettingsValidatorTests : IDisposable
{
    private readonly SoftwareMasterKey _master = new("local-test", 1, RandomNumberGenerator.GetBytes(32));
    private readonly EnvelopeCipher _cipher;
    private readonly ECDsa _clientKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly X509Certificate2 _client;

    public BackendSettingsValidatorTests()
    {
        _cipher = new EnvelopeCipher(new MasterKeyRing([_master], _master));
        _client = new CertificateRequest("CN=edge-client", _clientKey, HashAlgorithmName.SHA256).CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
    }

    public void Dispose()
    {
        _client.Dispose();
        _clientKey.Dispose();
        _master.Dispose();
    }

    private string ClientPem => _client.ExportCertificatePem();

    private string KeyPem => _clientKey.ExportPkcs8PrivateKeyPem();

    private static SiteValidator.Draft Reencrypt(BackendTlsDraft? tls = null, HealthCheckDraft? health = null, string backend = "https://10.0.0.1:8443") =>
        new("site", ["app.example"], [backend], [], Mode: "reencrypt", BackendTls: tls, HealthCheck: health);

    [Theory]
    [InlineData("reencrypt")]
    [InlineData("RE-ENCRYPT")]
    [InlineData("Re-Encrypt")]
    public void TryParseMode_ReencryptSpellings_AreReencrypt_ShownAsReencrypt(string text)
    {
        Assert.True(SiteModes.TryParseMode(text, out var mode));
        Assert.Equal(SiteMode.Reencrypt, mode);
        Assert.Equal("reencrypt", mode.Name());
        Assert.True(mode.TerminatesTls());
    }

    [Fact]
    public void Validate_ClientCertificateAndKey_KeyIsSealedForTheSiteRecordOnly()
    {
        var errors = new List<ValidationError>();
        var site = Assert.Single(SiteValidator.Validate([Reencrypt(new BackendTlsDraft(ClientCertificate: ClientPem, ClientKey: KeyPem))], SiteSource.Api, null, errors, _cipher));
        Assert.Empty(errors);
        Assert.Equal(ClientPem + "\n", site.BackendTls!.ClientCertificatePem);
        var sealedKey = site.BackendTls.SealedClientKey!;
        Assert.DoesNotContain("PRIVATE KEY", System.Text.Encoding.ASCII.GetString(sealedKey), StringComparison.Ordinal);
        using (var opened = _cipher.Open(StoreKeys.Site("app.example"), sealedKey))
        {
            Assert.Equal(_clientKey.ExportPkcs8PrivateKey(), opened.Span.ToArray());
        }

        // Bound to its record: the same envelope does not open for another site.
        Assert.ThrowsAny<CryptographicException>(() => _cipher.Open(StoreKeys.Site("other.example"), sealedKey));
    }

    [Fact]
    public void Validate_ClientKeyWithoutCipher_IsRefusedAsPlaintextAtRest()
    {
        var errors = new List<ValidationError>();
        Assert.Empty(SiteValidator.Validate([Reencrypt(new BackendTlsDraft(ClientCertificate: ClientPem, ClientKey: KeyPem))], SiteSource.Config, null, errors));
        var error = Assert.Single(errors);
        Assert.Equal("site:backendTls:clientKey", error.Path);
        Assert.Contains("never goes in the config file", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_BadTlsSettings_EveryErrorHasItsPath_NoKeyMaterialInMessages()
    {
        using var otherKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var cases = new (BackendTlsDraft Draft, string Path, string Says)[]
        {
            (new(Ca: "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----"), "site:backendTls:ca", "not a CA bundle in PEM"),
            (new(Ca: ClientPem + KeyPem), "site:backendTls:ca", "holds certificates only"),
            (new(ClientCertificate: ClientPem), "site:backendTls:clientKey", "needs its private key"),
            (new(ClientKey: KeyPem), "site:backendTls:clientCertificate", "needs its certificate"),
            (new(ClientCertificate: ClientPem, ClientKey: otherKey.ExportPkcs8PrivateKeyPem()), "site:backendTls:clientKey", "does not match"),
            (new(ClientCertificate: ClientPem, ClientKey: otherKey.ExportEncryptedPkcs8PrivateKeyPem("pw", new PbeParameters(PbeEncryptionAlgorithm.Aes128Cbc, HashAlgorithmName.SHA256, 1000))), "site:backendTls:clientKey", "encrypted"),
            (new(ClientCertificate: "garbage", ClientKey: KeyPem), "site:backendTls:clientCertificate", "not a client certificate in PEM"),
            (new(ServerName: "*.example"), "site:backendTls:serverName", "wildcard"),
            (new(ServerName: "bad name!"), "site:backendTls:serverName", "'bad name!'"),
            (new(Sni: "10.0.0.1"), "site:backendTls:sni", "RFC 6066"),
        };
        foreach (var (draft, path, says) in cases)
        {
            var errors = new List<ValidationError>();
            Assert.Empty(SiteValidator.Validate([Reencrypt(draft)], SiteSource.Api, null, errors, _cipher));
            var error = Assert.Single(errors);
            Assert.Equal(path, error.Path);
            Assert.Contains(says, error.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("PRIVATE KEY", error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Validate_ModeMismatches_AreNamed()
    {
        var errors = new List<ValidationError>();
        SiteValidator.Validate(
        [
            Reencrypt(backend: "http://10.0.0.1:8080"),
            new("offload", ["b.example"], ["http://10.0.0.1"], [], BackendTls: new(Sni: "b.example")),
            new("pass", ["c.example"], ["10.0.0.1:443"], [], Mode: "passthrough", BackendTls: new(Sni: "c.example"), HealthCheck: new(Path: "/h")),
        ], SiteSource.Api, null, errors, _cipher);
        Assert.Equal(["site:backends:0", "offload:backendTls", "pass:backendTls", "pass:healthCheck"], errors.Select(e => e.Path));
        Assert.Contains("is not https; a reencrypt site's backends are https URLs", errors[0].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_HealthCheck_DefaultsAndLimits()
    {
        var errors = new List<ValidationError>();
        var site = Assert.Single(SiteValidator.Validate([Reencrypt(health: new HealthCheckDraft(Path: "/healthz?deep=1"))], SiteSource.Api, null, errors));
        Assert.Equal(new BackendHealthCheck { Path = "/healthz?deep=1" }, site.HealthCheck);

        var cases = new (HealthCheckDraft Draft, string Path)[]
        {
            (new(Path: "healthz"), "site:healthCheck:path"),
            (new(Path: "/a b"), "site:healthCheck:path"),
            (new(Path: "/h", Interval: "10m"), "site:healthCheck:interval"),
            (new(Path: "/h", Interval: "soon"), "site:healthCheck:interval"),
            (new(Path: "/h", Interval: "2s", Timeout: "3s"), "site:healthCheck:timeout"),
            (new(Path: "/h", UnhealthyAfter: "0"), "site:healthCheck:unhealthyAfter"),
            (new(Path: "/h", HealthyAfter: "-1"), "site:healthCheck:healthyAfter"),
            (new(Passive: "yes"), "site:healthCheck:passive"),
            (new(ReactivateAfter: "2h"), "site:healthCheck:reactivateAfter"),
            (new(Timeout: "1s"), "site:healthCheck:timeout"),
        };
        foreach (var (draft, path) in cases)
        {
            errors.Clear();
            Assert.Empty(SiteValidator.Validate([Reencrypt(health: draft)], SiteSource.Api, null, errors));
            Assert.Equal(path, Assert.Single(errors).Path);
        }
    }

    [Fact]
    public void SameAs_BackendSettingsChange_IsAChange()
    {
        var site = new SiteDefinition { Id = "a", Hosts = ["a"], Backends = ["https://b"], Mode = SiteMode.Reencrypt, BackendTls = new BackendTls { Sni = "x" } };
        Assert.True(site.SameAs(site with { BackendTls = new BackendTls { Sni = "x" } }));
        Assert.False(site.SameAs(site with { BackendTls = new BackendTls { Sni = "y" } }));
        Assert.False(site.SameAs(site with { BackendTls = site.BackendTls! with { SealedClientKey = [1] } }));
        Assert.False(site.SameAs(site with { HealthCheck = new BackendHealthCheck { Passive = false } }));
        Assert.True(site.SameAs(site with { HealthCheck = null }));
    }

    [Fact]
    public void SealedRecords_Sites_RewrapsTheClientKeyAndLeavesOtherSitesAlone()
    {
        var errors = new List<ValidationError>();
        var site = Assert.Single(SiteValidator.Validate([Reencrypt(new BackendTlsDraft(ClientCertificate: ClientPem, ClientKey: KeyPem))], SiteSource.Api, null, errors, _cipher));
        var entry = new StoreEntry(StoreKeys.Site(site.Id), CoreJson.Serialize(site), 1, 1, 1, 0);
        Assert.Single(SealedRecords.Sites.Envelopes(entry));
        var rewritten = CoreJson.Deserialize<SiteDefinition>(entry with { Value = SealedRecords.Sites.Rewrite(entry, envelope => [.. envelope, 7]) });
        Assert.Equal(7, rewritten.BackendTls!.SealedClientKey![^1]);

        var plain = new SiteDefinition { Id = "p", Hosts = ["p"], Backends = ["http://b"] };
        Assert.Empty(SealedRecords.Sites.Envelopes(new StoreEntry(StoreKeys.Site("p"), CoreJson.Serialize(plain), 1, 1, 1, 0)));
    }
}
