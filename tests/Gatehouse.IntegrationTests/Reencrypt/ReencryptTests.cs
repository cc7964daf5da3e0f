using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using System.Net.Http.Json;
using System.Text.Json;
using Gatehouse.IntegrationTests.Infrastructure;

namespace Gatehouse.IntegrationTests.Reencrypt;

/// <summary>
/// Re-encrypt sites end to end: curl through the edge, real Kestrel TLS backends with certificates from the test's
/// own CA, verification against the site's CA bundle and names, the SNI the backend saw, a client certificate toward
/// a backend that requires one, connection reuse, and a CA bundle changed while running.
/// </summary>
public sealed class ReencryptTests : IAsyncLifetime
{
    private readonly TestCa _ca = new("Backend CA");
    private readonly TestCa _otherCa = new("Some Other CA");
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "gatehouse-reencrypt-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly List<TlsBackend> _backends = [];
    private GatehouseInstance? _gatehouse;

    private GatehouseInstance Gatehouse => _gatehouse!;

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_directory);
        File.WriteAllText(CaFile, _ca.Pem);
        File.WriteAllText(OtherCaFile, _otherCa.Pem);
        return Task.CompletedTask;
    }

    private string CaFile => Path.Combine(_directory, "backend-ca.pem");

    private string OtherCaFile => Path.Combine(_directory, "other-ca.pem");

    [Fact]
    public async Task Reencrypt_VerifiedBackend_AnswersOverTlsAndReusesOneConnection()
    {
        var backend = await StartBackendAsync("one", _ca.IssueServer(["127.0.0.1"]));
        await StartGatehouseAsync($"[{{hosts: [app.test], mode: re-encrypt, backends: ['{backend.Url}'], backendTls: {{caFile: '{CaFile}'}}}}]");

        for (var i = 0; i < 5; i++)
        {
            var (status, body) = await CurlAsync("app.test", "/x");
            Assert.True(status == 200, $"request {i}: {status} {body}\n{Logs()}");
            Assert.Equal("one", JsonDocument.Parse(body).RootElement.GetProperty("backend").GetString());
        }

        // Five requests from five curl processes, one TLS connection from the edge to the backend.
        Assert.Equal(1, backend.Handshakes);
        Assert.Equal([""], backend.ServerNames); // an IP address is never sent as SNI (RFC 6066 §3)
        var sites = await Gatehouse.AdminClient().GetFromJsonAsync<JsonElement>("v1/sites");
        Assert.Equal("reencrypt", sites[0].GetProperty("mode").GetString());
        Assert.Equal("CN=Backend CA", sites[0].GetProperty("backendTls").GetProperty("ca")[0].GetString());
    }

    [Fact]
    public async Task Reencrypt_ConfiguredServerNameAndSni_AreWhatTheBackendSeesAndIsVerifiedFor()
    {
        // The certificate is for the internal name only; the SNI asked for is another name the backend routes by.
        var backend = await StartBackendAsync("named", _ca.IssueServer(["backend.internal"]));
        await StartGatehouseAsync($"[{{hosts: [named.test], mode: reencrypt, backends: ['{backend.Url}'], backendTls: {{caFile: '{CaFile}', serverName: backend.internal, sni: front.internal}}}}]");

        var (status, body) = await CurlAsync("named.test", "/");
        Assert.True(status == 200, $"{status} {body}\n{Logs()}");
        Assert.Equal(["front.internal"], backend.ServerNames);

        // Without the server name the backend URL's host (127.0.0.1) is checked, which the certificate does not name.
        Gatehouse.WriteConfig($"[{{hosts: [named.test], mode: reencrypt, backends: ['{backend.Url}'], backendTls: {{caFile: '{CaFile}', sni: front.internal}}}}]");
        Assert.True(await GatehouseInstance.EventuallyAsync(async () => (await CurlAsync("named.test", "/")).Status == 502, TimeSpan.FromSeconds(30)), Logs());
        Assert.Contains(Gatehouse.Logs, line => line.Contains("[5701]", StringComparison.Ordinal) && line.Contains("Site named.test: backend https://127.0.0.1:", StringComparison.Ordinal)
            && line.Contains("RemoteCertificateNameMismatch", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Reencrypt_WrongCa_Gets502_BackendGetsNoRequest_OneClearLogLine()
    {
        var backend = await StartBackendAsync("untrusted", _otherCa.IssueServer(["127.0.0.1"]));
        await StartGatehouseAsync($"[{{hosts: [wrongca.test], mode: reencrypt, backends: ['{backend.Url}'], backendTls: {{caFile: '{CaFile}'}}}}]");

        var (status, body) = await CurlAsync("wrongca.test", "/secret");
        Assert.Equal(502, status);
        Assert.Contains("502 Bad Gateway", body, StringComparison.Ordinal);
        Assert.Equal(0, backend.Requests);
        var lines = Gatehouse.Logs.Where(l => l.Contains("[5701]", StringComparison.Ordinal)).ToList();
        var line = Assert.Single(lines);
        Assert.Contains($"Site wrongca.test: backend https://127.0.0.1:{backend.Port} failed TLS verification", line, StringComparison.Ordinal);
        Assert.Contains("untrusted root", line, StringComparison.Ordinal);
        Assert.DoesNotContain(Gatehouse.Logs, l => l.Contains("   at ", StringComparison.Ordinal)); // no stack traces
        Assert.DoesNotContain(Gatehouse.Logs, l => l.Contains("[5704]", StringComparison.Ordinal)); // said once, by 5701
    }

    [Fact]
    public async Task Reencrypt_ExpiredBackendCertificate_Gets502_NamingExpiry()
    {
        var backend = await StartBackendAsync("expired", _ca.IssueServer(["127.0.0.1"], DateTimeOffset.UtcNow.AddDays(-10), DateTimeOffset.UtcNow.AddDays(-1)));
        await StartGatehouseAsync($"[{{hosts: [expired.test], mode: reencrypt, backends: ['{backend.Url}'], backendTls: {{caFile: '{CaFile}'}}}}]");

        Assert.Equal(502, (await CurlAsync("expired.test", "/")).Status);
        Assert.Equal(0, backend.Requests);
        Assert.Contains(Gatehouse.Logs, l => l.Contains("[5701]", StringComparison.Ordinal) && l.Contains("NotTimeValid", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Reencrypt_CaBundleChangedInConfig_TakesEffectWithoutRestart()
    {
        var backend = await StartBackendAsync("hot", _ca.IssueServer(["127.0.0.1"]));
        await StartGatehouseAsync($"[{{hosts: [hot.test], mode: reencrypt, backends: ['{backend.Url}'], backendTls: {{caFile: '{OtherCaFile}'}}}}]");
        Assert.Equal(502, (await CurlAsync("hot.test", "/")).Status);

        Gatehouse.WriteConfig($"[{{hosts: [hot.test], mode: reencrypt, backends: ['{backend.Url}'], backendTls: {{caFile: '{CaFile}'}}}}]");
        Assert.True(await GatehouseInstance.EventuallyAsync(async () => (await CurlAsync("hot.test", "/")).Status == 200, TimeSpan.FromSeconds(30)), Logs());

        // And back: the pooled, verified connection is not kept for the new settings.
        Gatehouse.WriteConfig($"[{{hosts: [hot.test], mode: reencrypt, backends: ['{backend.Url}'], backendTls: {{caFile: '{OtherCaFile}'}}}}]");
        Assert.True(await GatehouseInstance.EventuallyAsync(async () => (await CurlAsync("hot.test", "/")).Status == 502, TimeSpan.FromSeconds(30)), Logs());
    }

    [Fact]
    public async Task Reencrypt_ClientCertificateAddedWithCli_IsPresentedToABackendThatRequiresOne_AndStoredSealed()
    {
        using var clientCa = new TestCa("Client CA");
        var backend = await StartBackendAsync("mtls", _ca.IssueServer(["127.0.0.1"]), requireClientCertificateFrom: clientCa.Certificate);
        await StartGatehouseAsync("[]");
        using var client = clientCa.IssueClient("gatehouse-edge");
        var certFile = Path.Combine(_directory, "client.pem");
        var keyFile = Path.Combine(_directory, "client.key");
        File.WriteAllText(certFile, client.ExportCertificatePem());
        File.WriteAllText(keyFile, client.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());

        // Without a client certificate the backend refuses the handshake: 502.
        var added = await CliAsync("sites", "add", "nocert.test", "--mode", "reencrypt", "-b", backend.Url, "--backend-ca", CaFile);
        Assert.True(added.ExitCode == 0, added.StandardError);
        await Gatehouse.WaitForNewLeafAsync("nocert.test", GatehouseInstance.TrustOnly(Gatehouse.Root), null, TimeSpan.FromSeconds(30));
        Assert.Equal(502, (await CurlAsync("nocert.test", "/")).Status);

        added = await CliAsync("sites", "add", "mtls.test", "--mode", "reencrypt", "-b", backend.Url, "--backend-ca", CaFile, "--backend-client-cert", certFile, "--backend-client-key", keyFile);
        Assert.True(added.ExitCode == 0, added.StandardError);
        await Gatehouse.WaitForNewLeafAsync("mtls.test", GatehouseInstance.TrustOnly(Gatehouse.Root), null, TimeSpan.FromSeconds(30));
        var (status, body) = await CurlAsync("mtls.test", "/");
        Assert.True(status == 200, $"{status} {body}\n{Logs()}");
        Assert.Equal("CN=gatehouse-edge", JsonDocument.Parse(body).RootElement.GetProperty("clientCertificate").GetString());

        // The list shows the certificate's public facts, never the key.
        var list = await CliAsync("sites", "list", "--json");
        Assert.Contains("CN=gatehouse-edge", list.StandardOutput, StringComparison.Ordinal);
        Assert.Contains(client.SerialNumber, list.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("PRIVATE KEY", list.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("sealedClientKey", list.StandardOutput, StringComparison.OrdinalIgnoreCase);

        // At rest: no plaintext private key anywhere in the data directory, the client key's scalar included.
        await Gatehouse.StopAsync();
        var scalar = client.GetECDsaPrivateKey()!.ExportParameters(true).D!;
        var findings = new KeyMaterialScanner([scalar]).Scan(Gatehouse.DataDirectory, except: null);
        Assert.Empty(findings);
    }

    [Fact]
    public async Task AdminApi_BadBackendSettings_400WithEveryPath_NothingChanges()
    {
        await StartGatehouseAsync("[]");
        using var client = _otherCa.IssueServer(["x.test"]);
        using var otherKey = System.Security.Cryptography.ECDsa.Create();
        using var admin = Gatehouse.AdminClient();
        var response = await admin.PostAsync("v1/sites", JsonContent.Create(new
        {
            hosts = new[] { "bad.test" },
            backends = new[] { "http://127.0.0.1:1" },
            mode = "reencrypt",
            backendTls = new { ca = "not pem", sni = "127.0.0.1", clientCertificate = client.ExportCertificatePem(), clientKey = otherKey.ExportPkcs8PrivateKeyPem() },
            healthCheck = new { path = "healthz", interval = "1h", unhealthyAfter = 0 },
        }));
        var problem = await response.Content.ReadAsStringAsync();
        Assert.Equal(400, (int)response.StatusCode);
        foreach (var path in new[] { "site:backends:0", "site:backendTls:ca", "site:backendTls:sni", "site:backendTls:clientKey", "site:healthCheck:path", "site:healthCheck:interval", "site:healthCheck:unhealthyAfter" })
        {
            Assert.Contains($"\"path\":\"{path}\"", problem, StringComparison.Ordinal);
        }

        Assert.DoesNotContain("PRIVATE KEY", problem, StringComparison.Ordinal);
        Assert.Equal(0, (await admin.GetFromJsonAsync<JsonElement>("v1/sites")).GetArrayLength());
    }

    public async Task DisposeAsync()
    {
        if (_gatehouse is not null)
        {
            await _gatehouse.DisposeAsync();
        }

        foreach (var backend in _backends)
        {
            await backend.DisposeAsync();
        }

        _ca.Dispose();
        _otherCa.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private async Task<TlsBackend> StartBackendAsync(string name, X509Certificate2 certificate, X509Certificate2? requireClientCertificateFrom = null)
    {
        var backend = await TlsBackend.StartAsync(name, certificate, requireClientCertificateFrom);
        _backends.Add(backend);
        return backend;
    }

    private async Task StartGatehouseAsync(string sitesYaml)
    {
        _gatehouse = await GatehouseInstance.StartAsync(sitesYaml);
        foreach (var host in System.Text.RegularExpressions.Regex.Matches(sitesYaml, @"hosts: \[([a-z.]+)\]").Select(m => m.Groups[1].Value))
        {
            await Gatehouse.WaitForNewLeafAsync(host, GatehouseInstance.TrustOnly(Gatehouse.Root), null, TimeSpan.FromSeconds(30));
        }
    }

    internal Task<(int Status, string Body)> CurlAsync(string host, string path) => CurlThroughEdgeAsync(Gatehouse, host, path);

    /// <summary>One request with curl through the edge (the edge's local CA trusted, the name resolved to loopback).</summary>
    internal static async Task<(int Status, string Body)> CurlThroughEdgeAsync(GatehouseInstance gatehouse, string host, string path)
    {
        var root = Path.Combine(gatehouse.DataDirectory, "local-ca-root.pem");
        var result = await Tools.RunAsync("curl", ["-sS", "--max-time", "30", "--resolve", $"{host}:{gatehouse.HttpsPort}:127.0.0.1", "--cacert", root, "-w", "\n%{http_code}", $"https://{host}:{gatehouse.HttpsPort}{path}"], gatehouse.Directory);
        Assert.True(result.ExitCode == 0, $"curl: {result.StandardError}");
        var cut = result.StandardOutput.LastIndexOf('\n');
        return (int.Parse(result.StandardOutput[(cut + 1)..], CultureInfo.InvariantCulture), result.StandardOutput[..cut]);
    }

    private Task<ToolResult> CliAsync(params string[] args) =>
        Tools.GatehouseAsync(Gatehouse.Directory, [.. args, "--admin", $"https://127.0.0.1:{Gatehouse.AdminPort}", "--data", Gatehouse.DataDirectory], TimeSpan.FromSeconds(60));

    private string Logs() => string.Join('\n', Gatehouse.Logs.TakeLast(25));
}
