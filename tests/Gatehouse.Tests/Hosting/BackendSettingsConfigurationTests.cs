using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Hosting;
using Gatehouse.Sites;

namespace Gatehouse.Tests.Hosting;

/// <summary>The config file's <c>backendTls</c> and <c>healthCheck</c> keys of a site.</summary>
public sealed class BackendSettingsConfigurationTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    private (GatehouseOptions? Options, List<string> Errors) Load(string sites)
    {
        var path = Path.Combine(_directory.Path, "gatehouse.yaml");
        File.WriteAllText(path, $"dataDirectory: ./state\nsites: {sites}\n");
        var errors = new List<string>();
        return (new GatehouseConfiguration(path, [], new Dictionary<string, string?>()).Load(errors), errors);
    }

    [Fact]
    public void Load_ReencryptSiteWithCaFileAndHealthCheck_ReadsEverything()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var ca = new CertificateRequest("CN=Test Backend CA", key, HashAlgorithmName.SHA256).CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        File.WriteAllText(Path.Combine(_directory.Path, "ca.pem"), ca.ExportCertificatePem());
        var (options, errors) = Load("""
            [{hosts: [app.example], mode: Re-Encrypt, backends: ['https://10.0.0.1:8443'],
              backendTls: {caFile: ca.pem, serverName: Backend.Internal, sni: front.internal},
              healthCheck: {path: /healthz, interval: 2s, timeout: 500ms, unhealthyAfter: 3, healthyAfter: 2, passive: false, reactivateAfter: 45s}}]
            """);
        Assert.Empty(errors);
        var (site, _) = Assert.Single(options!.Sites);
        Assert.Equal(SiteMode.Reencrypt, site.Mode);
        Assert.Equal(ca.ExportCertificatePem() + "\n", site.BackendTls!.CaPem);
        Assert.Equal("backend.internal", site.BackendTls.ServerName);
        Assert.Equal("front.internal", site.BackendTls.Sni);
        Assert.Null(site.BackendTls.SealedClientKey);
        Assert.Equal(
            new BackendHealthCheck { Path = "/healthz", Interval = TimeSpan.FromSeconds(2), Timeout = TimeSpan.FromMilliseconds(500), UnhealthyAfter = 3, HealthyAfter = 2, Passive = false, ReactivateAfter = TimeSpan.FromSeconds(45) },
            site.HealthCheck);
    }

    [Fact]
    public void Load_PassiveOnlyHealthCheck_OnOffloadSite_KeepsActiveOff()
    {
        var (options, errors) = Load("[{hosts: [a.example], backends: ['http://10.0.0.1'], healthCheck: {reactivateAfter: 10s}}]");
        Assert.Empty(errors);
        var check = Assert.Single(options!.Sites).Item1.HealthCheck;
        Assert.Equal(new BackendHealthCheck { ReactivateAfter = TimeSpan.FromSeconds(10) }, check);
    }

    [Fact]
    public void Load_BadBackendSettings_EveryErrorNamedWithItsPath()
    {
        File.WriteAllText(Path.Combine(_directory.Path, "junk.pem"), "not a certificate");
        var (options, errors) = Load("""
            [{hosts: [a.example], mode: reencrypt, backends: ['http://10.0.0.1'], backendTls: {caFile: missing.pem, sni: 10.0.0.1, serverName: '*.example', clientKeyFile: k.pem, colour: blue}},
             {hosts: [b.example], mode: reencrypt, backends: ['https://10.0.0.1'], backendTls: {caFile: junk.pem}, healthCheck: {path: healthz, interval: 0s, timeout: 2m, unhealthyAfter: 11, healthyAfter: x, passive: maybe}},
             {hosts: [c.example], mode: passthrough, backends: ['10.0.0.1:443'], backendTls: {sni: c.example}, healthCheck: {path: /h}},
             {hosts: [d.example], backends: ['http://10.0.0.1'], backendTls: {sni: d.example}, healthCheck: {interval: 5s}}]
            """);
        Assert.Null(options);
        string[] expected =
        [
            "sites:0:backends:0", "sites:0:backendTls:caFile", "sites:0:backendTls:clientKeyFile", "sites:0:backendTls:colour", "sites:0:backendTls:sni", "sites:0:backendTls:serverName",
            "sites:1:backendTls:caFile", "sites:1:healthCheck:path", "sites:1:healthCheck:interval", "sites:1:healthCheck:timeout", "sites:1:healthCheck:unhealthyAfter", "sites:1:healthCheck:healthyAfter", "sites:1:healthCheck:passive",
            "sites:2:backendTls", "sites:2:healthCheck",
            "sites:3:backendTls", "sites:3:healthCheck:interval",
        ];
        foreach (var path in expected)
        {
            Assert.Contains(errors, e => e.Contains($": {path}: ", StringComparison.Ordinal));
        }

        Assert.Contains(errors, e => e.Contains("sites:0:backends:0: 'http://10.0.0.1' is not https", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("cannot read", StringComparison.Ordinal) && e.Contains("missing.pem", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("sites:0:backendTls:sni: '10.0.0.1' is an IP address", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("sites:0:backendTls:clientKeyFile: a backend client certificate is not read from the config file", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("sites:1:backendTls:caFile: not a CA bundle in PEM", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("sites:1:healthCheck:interval: 0s is outside 1s–5m", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("sites:2:backendTls: only a reencrypt site", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("sites:3:healthCheck:interval: applies to active checks", StringComparison.Ordinal));
    }
}
