using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Edge.Tls;
using Gatehouse.Hosting;
using Gatehouse.Sites;

namespace Gatehouse.Tests.Sites;

public sealed class SiteTlsValidationTests : IDisposable
{
    private readonly TempDirectory _directory = new();
    private readonly X509Certificate2 _ca;
    private readonly string _caPem;

    public SiteTlsValidationTests()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=Unit Client CA", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        _ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        _caPem = _ca.ExportCertificatePem();
    }

    public void Dispose()
    {
        _ca.Dispose();
        _directory.Dispose();
    }

    [Fact]
    public void Validate_RequiredClientAuthAndHsts_StoresNormalizedPolicies()
    {
        var errors = new List<ValidationError>();
        var site = Assert.Single(SiteValidator.Validate(
            [new("sites:0", ["a.example"], ["http://10.0.0.1"], []) { ClientAuth = new("Required", _caPem, [" CN=client1, O=Example "], ["DNS:Client1.Example", "uri:spiffe://x/y"], []), Hsts = new(null, "2h", "true") }],
            SiteSource.Config, null, errors));

        Assert.Empty(errors);
        Assert.Equal(ClientAuthMode.Required, site.ClientAuth!.Mode);
        Assert.Equal(["CN=client1, O=Example"], site.ClientAuth.AllowedSubjects);
        Assert.Equal(["dns:client1.example", "uri:spiffe://x/y"], site.ClientAuth.AllowedSans);
        Assert.Equal("max-age=7200; includeSubDomains", site.Hsts!.HeaderValue);
    }

    [Fact]
    public void Validate_EveryBadTlsField_IsReportedWithItsPathAndNoSiteIsMade()
    {
        var errors = new List<ValidationError>();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var keyPem = key.ExportPkcs8PrivateKeyPem(); // made now: a private key pasted where a CA bundle belongs
        var keyBody = keyPem.Split('\n')[1];
        var sites = SiteValidator.Validate(
        [
            new("sites:0", ["a.example"], ["http://10.0.0.1"], []) { ClientAuth = new("sometimes", _caPem, [], [], []) },
            new("sites:1", ["b.example"], ["http://10.0.0.1"], []) { ClientAuth = new("required", "not pem", ["no-equals"], ["ftp:x", "dns:"], ["/ok"]) },
            new("sites:2", ["c.example"], ["10.0.0.1:443"], [], Mode: "passthrough") { ClientAuth = new("required", _caPem, [], [], []), Hsts = new("on") },
            new("sites:3", ["d.example"], ["http://10.0.0.1"], []) { ClientAuth = new("optional", keyPem, [], [], ["relative"]) },
            new("sites:4", ["e.example"], ["http://10.0.0.1"], []) { ClientAuth = new("required", null, [], [], []), Hsts = new(null, "forever") },
            new("sites:5", ["f.example"], ["http://10.0.0.1"], []) { Hsts = new(null, "30d", "false", "true") },
            new("sites:6", ["g.example"], ["http://10.0.0.1"], []) { Hsts = new("sometimes") },
            new("sites:7", ["h.example"], ["http://10.0.0.1"], []) { Hsts = new(null, "365d", "yes") },
        ], SiteSource.Config, null, errors);

        Assert.Empty(sites);
        Assert.Equal(
        [
            "sites:0:clientAuth:mode",
            "sites:1:clientAuth:ca", "sites:1:clientAuth:allowedSubjects:0", "sites:1:clientAuth:allowedSans:0", "sites:1:clientAuth:allowedSans:1", "sites:1:clientAuth:requiredPaths",
            "sites:2:clientAuth", "sites:2:hsts",
            "sites:3:clientAuth:ca", "sites:3:clientAuth:requiredPaths:0",
            "sites:4:clientAuth:ca", "sites:4:hsts:maxAge",
            "sites:5:hsts:preload",
            "sites:6:hsts",
            "sites:7:hsts:includeSubdomains",
        ], errors.Select(e => e.Path));
        Assert.DoesNotContain(errors, e => e.Message.Contains(keyBody, StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_ExpiredCaCertificate_IsAnError()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var old = new CertificateRequest("CN=Old CA", key, HashAlgorithmName.SHA256).CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-30), DateTimeOffset.UtcNow.AddDays(-1));
        var errors = new List<ValidationError>();
        SiteValidator.Validate([new("site", ["a.example"], ["http://10.0.0.1"], []) { ClientAuth = new("required", old.ExportCertificatePem(), [], [], []) }], SiteSource.Api, null, errors);
        var error = Assert.Single(errors);
        Assert.Equal("site:clientAuth:ca", error.Path);
        Assert.Contains("expired", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new string[0], false)]
    [InlineData(new[] { "local" }, false)]
    [InlineData(new[] { "letsencrypt" }, true)]
    [InlineData(new[] { "local", "zerossl" }, true)]
    public void HstsFor_SiteWithoutOwnPolicy_IsOnForAcmeIssuersOnly(string[] issuers, bool enabled)
    {
        var site = new SiteDefinition { Id = "a.example", Hosts = ["a.example"], Backends = ["http://10.0.0.1"], Issuers = issuers };
        Assert.Equal(enabled, HstsPolicy.For(site).Enabled);
        Assert.Equal(enabled ? "max-age=31536000" : null, HstsPolicy.For(site).HeaderValue);
        Assert.False(HstsPolicy.For(site with { Hsts = HstsPolicy.Off }).Enabled);
    }

    [Fact]
    public void SameAs_ChangeOfOnlyClientAuthOrHsts_IsAChange()
    {
        var site = new SiteDefinition { Id = "a.example", Hosts = ["a.example"], Backends = ["http://10.0.0.1"] };
        var mtls = site with { ClientAuth = new ClientAuthPolicy { Mode = ClientAuthMode.Required, CaPem = _caPem } };
        Assert.False(site.SameAs(mtls));
        Assert.True(mtls.SameAs(mtls with { ClientAuth = mtls.ClientAuth! with { AllowedSans = [] } }));
        Assert.False(mtls.SameAs(mtls with { ClientAuth = mtls.ClientAuth! with { Mode = ClientAuthMode.Optional } }));
        Assert.False(site.SameAs(site with { Hsts = HstsPolicy.Off }));
    }

    [Fact]
    public void Load_ConfigWithCaFileAndHsts_ReadsTheBundleIntoTheSite()
    {
        File.WriteAllText(Path.Combine(_directory.Path, "clients.pem"), _caPem);
        var path = Path.Combine(_directory.Path, "gatehouse.yaml");
        File.WriteAllText(path, """
            sites:
              - hosts: [a.example]
                backends: [http://10.0.0.1]
                clientAuth: {mode: optional, caFile: clients.pem, requiredPaths: [/admin]}
                hsts: off
              - hosts: [b.example]
                backends: [http://10.0.0.1]
                clientAuth: {mode: required, caFile: missing.pem, colour: blue}
                hsts: {maxAge: 1d, preload: true}
            """);
        var errors = new List<string>();
        Assert.Null(new GatehouseConfiguration(path, [], new Dictionary<string, string?>()).Load(errors));
        Assert.Equal(3, errors.Count);
        Assert.Contains(errors, e => e.Contains("sites:1:clientAuth:colour: unknown key", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("sites:1:clientAuth:caFile: 'missing.pem' cannot be read", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("sites:1:hsts:preload", StringComparison.Ordinal));

        File.WriteAllText(path, File.ReadAllText(path).Split("  - hosts: [b.example]")[0]);
        errors.Clear();
        var options = new GatehouseConfiguration(path, [], new Dictionary<string, string?>()).Load(errors);
        Assert.Empty(errors);
        var (site, _) = Assert.Single(options!.Sites);
        Assert.Equal(ClientAuthMode.Optional, site.ClientAuth!.Mode);
        Assert.Contains("BEGIN CERTIFICATE", site.ClientAuth.CaPem, StringComparison.Ordinal);
        Assert.Equal(["/admin"], site.ClientAuth.RequiredPaths);
        Assert.Same(HstsPolicy.Off, site.Hsts);
    }

    [Fact]
    public void SubjectAlternativeNames_EveryKind_InAllowListForm()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=x", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("Client.Example");
        san.AddEmailAddress("ops@example.com");
        san.AddUri(new Uri("spiffe://example/workload"));
        san.AddIpAddress(System.Net.IPAddress.Parse("10.0.0.7"));
        request.CertificateExtensions.Add(san.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddDays(1));

        Assert.Equal(["dns:client.example", "email:ops@example.com", "uri:spiffe://example/workload", "ip:10.0.0.7"], ClientIdentity.SubjectAlternativeNames(certificate));
    }
}
