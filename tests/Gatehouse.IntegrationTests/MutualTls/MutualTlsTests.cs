using System.Security.Cryptography;
using System.Text.Json;
using Gatehouse.IntegrationTests.Infrastructure;

namespace Gatehouse.IntegrationTests.MutualTls;

/// <summary>
/// Mutual TLS and HSTS per site on one server, with curl and openssl s_client as clients and our own backend that
/// echoes the headers it got. On .NET 10 on Linux a client certificate that is missing or invalid on a required
/// site ends the connection right after the handshake without a TLS alert and before any request is read (see
/// docs/edge-modes.md), so "refused" below means: the client gets no HTTP response and the backend no request.
/// </summary>
public sealed class MutualTlsTests : IAsyncLifetime
{
    private ClientCertificates _certs = null!;
    private Backend _backend = null!;
    private GatehouseInstance _gatehouse = null!;
    private string _rootPem = null!;
    private int _deadPort;

    public async Task InitializeAsync()
    {
        _backend = await Backend.StartAsync("echo");
        _deadPort = Ports.Free();
        _gatehouse = GatehouseInstance.Create();
        _certs = new ClientCertificates(_gatehouse.Directory);
        _gatehouse.WriteConfig(Sites(requiredCaFile: "client-ca.pem"));
        await _gatehouse.RestartAsync();
        _rootPem = Path.Combine(_gatehouse.Directory, "edge-root.pem");
        await File.WriteAllTextAsync(_rootPem, _gatehouse.Root.ExportCertificatePem());
        foreach (var host in new[] { "required.mtls.test", "optional.mtls.test", "open.mtls.test", "plain.mtls.test" })
        {
            var served = await GatehouseInstance.EventuallyAsync(async () => (await CurlAsync(host, "/", _certs.Good)).Status == 200, TimeSpan.FromSeconds(60));
            Assert.True(served, $"{host} was not served; logs:\n{string.Join('\n', _gatehouse.Logs.TakeLast(20))}");
        }
    }

    private string Sites(string requiredCaFile) => $$"""

          - hosts: [required.mtls.test]
            backends: [{{_backend.Url}}]
            clientAuth:
              mode: required
              caFile: {{requiredCaFile}}
              allowedSubjects: ["{{ClientCertificates.GoodSubject}}"]
              allowedSans: ["dns:client1.test"]
          - hosts: [optional.mtls.test]
            backends: [{{_backend.Url}}]
            clientAuth:
              mode: optional
              ca: |
        {{Indent(File.ReadAllText(_certs.CaPemPath), 10)}}
              requiredPaths: [/private]
            hsts: on
          - hosts: [open.mtls.test]
            backends: [{{_backend.Url}}]
            hsts: {maxAge: 1d, includeSubdomains: true}
          - hosts: [plain.mtls.test]
            backends: [{{_backend.Url}}]
            issuers: [local]
          - hosts: [dead.mtls.test]
            backends: ["http://127.0.0.1:{{_deadPort}}"]
            hsts: {maxAge: 600}
        """;

    public async Task DisposeAsync()
    {
        await _gatehouse.DisposeAsync();
        await _backend.DisposeAsync();
        _certs.Dispose();
    }

    [Fact]
    public async Task Required_GoodCertificate_BackendSeesVerifiedIdentityAndNoForgedHeaders()
    {
        var response = await CurlAsync("required.mtls.test", "/", _certs.Good, ["X-Client-Cert-Subject: CN=admin", "X-Client-Cert-Fingerprint: 00", "X-Client-Cert: forged", "X-Client-Cert-Sans: dns:admin"]);

        Assert.Equal(200, response.Status);
        var seen = response.Json();
        Assert.Equal(ClientCertificates.GoodSubject, seen["x-client-cert-subject"]);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(_certs.Good.Certificate.RawData)), seen["x-client-cert-fingerprint"]);
        Assert.Equal("dns:client1.test,email:client1@gatehouse.test,uri:spiffe://gatehouse.test/client1", seen["x-client-cert-sans"]);
        Assert.Equal(_certs.Good.Certificate.ExportCertificatePem(), Uri.UnescapeDataString(seen["x-client-cert"]));
    }

    [Theory]
    [InlineData("none")]
    [InlineData("wrong-ca")]
    [InlineData("expired")]
    [InlineData("not-allowed")]
    public async Task Required_MissingOrInvalidCertificate_ConnectionRefusedBeforeAnyRequest(string which)
    {
        var certificate = which switch
        {
            "wrong-ca" => _certs.FromWrongCa,
            "expired" => _certs.Expired,
            "not-allowed" => _certs.Stranger,
            _ => null,
        };

        var curl = await CurlAsync("required.mtls.test", "/", certificate);
        Assert.NotEqual(0, curl.ExitCode);
        Assert.Null(curl.Status);

        foreach (var version in new[] { "-tls1_3", "-tls1_2" })
        {
            var openssl = await OpensslGetAsync("required.mtls.test", version, certificate);
            Assert.DoesNotContain("HTTP/1.1", openssl.StandardOutput, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Required_GoodCertificateWithOpenssl_BothTlsVersionsAnswer()
    {
        foreach (var version in new[] { "-tls1_3", "-tls1_2" })
        {
            var openssl = await OpensslGetAsync("required.mtls.test", version, _certs.Good);
            Assert.Contains("HTTP/1.1 200", openssl.StandardOutput, StringComparison.Ordinal);
            Assert.Contains(ClientCertificates.GoodSubject, openssl.StandardOutput, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Optional_NoCertificate_OpenPathsAnswerAndRequiredPathsGet403()
    {
        var open = await CurlAsync("optional.mtls.test", "/public", null, ["X-Client-Cert-Subject: CN=admin"]);
        Assert.Equal(200, open.Status);
        Assert.False(open.Json().ContainsKey("x-client-cert-subject"));

        var refused = await CurlAsync("optional.mtls.test", "/private/report", null);
        Assert.Equal(403, refused.Status);
        Assert.Contains("needs a client certificate", refused.Body, StringComparison.Ordinal);
        Assert.Equal("max-age=31536000", refused.Header("strict-transport-security")); // HSTS on the error page too

        var withCertificate = await CurlAsync("optional.mtls.test", "/private/report", _certs.Good);
        Assert.Equal(200, withCertificate.Status);
        Assert.Equal(ClientCertificates.GoodSubject, withCertificate.Json()["x-client-cert-subject"]);
    }

    [Fact]
    public async Task Optional_InvalidCertificate_ConnectionRefused()
    {
        var curl = await CurlAsync("optional.mtls.test", "/public", _certs.FromWrongCa);
        Assert.NotEqual(0, curl.ExitCode);
        Assert.Null(curl.Status);
    }

    [Fact]
    public async Task SiteWithoutClientAuth_ForgedIdentityHeaders_AreStripped()
    {
        var response = await CurlAsync("open.mtls.test", "/", null, ["X-Client-Cert-Subject: CN=admin", "X-Client-Cert: forged", "X-Client-Cert-Fingerprint: 00", "X-Client-Cert-Sans: dns:admin"]);
        Assert.Equal(200, response.Status);
        var seen = response.Json();
        Assert.DoesNotContain(seen.Keys, k => k.StartsWith("x-client-cert", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Resumption_SessionOfAnMtlsOrAnotherSite_NeverSkipsTheClientCertificate()
    {
        foreach (var version in new[] { "-tls1_3", "-tls1_2" })
        {
            var session = Path.Combine(_gatehouse.Directory, $"mtls{version}.session");
            var first = await OpensslGetAsync("required.mtls.test", version, _certs.Good, ["-sess_out", session]);
            Assert.Contains("HTTP/1.1 200", first.StandardOutput, StringComparison.Ordinal);

            var other = Path.Combine(_gatehouse.Directory, $"open{version}.session");
            var open = await OpensslGetAsync("open.mtls.test", version, null, ["-sess_out", other]);
            Assert.Contains("HTTP/1.1 200", open.StandardOutput, StringComparison.Ordinal);

            // openssl writes no session file when the server gave nothing to resume with; that is a pass too.
            foreach (var saved in new[] { session, other })
            {
                if (!File.Exists(saved))
                {
                    continue;
                }

                var resumed = await OpensslGetAsync("required.mtls.test", version, null, ["-sess_in", saved]);
                Assert.DoesNotContain("Reused,", resumed.StandardOutput, StringComparison.Ordinal);
                Assert.DoesNotContain("HTTP/1.1 200", resumed.StandardOutput, StringComparison.Ordinal);

                var again = await OpensslGetAsync("required.mtls.test", version, _certs.Good, ["-sess_in", saved]);
                Assert.DoesNotContain("Reused,", again.StandardOutput, StringComparison.Ordinal);
                Assert.Contains(ClientCertificates.GoodSubject, again.StandardOutput, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public async Task Hsts_PerSite_PresentWhereConfiguredAbsentOnLocalCaDefaultAndPlainHttp()
    {
        Assert.Equal("max-age=86400; includeSubDomains", (await CurlAsync("open.mtls.test", "/", null)).Header("strict-transport-security"));
        Assert.Null((await CurlAsync("plain.mtls.test", "/", null)).Header("strict-transport-security"));

        CurlResponse dead = null!;
        Assert.True(await GatehouseInstance.EventuallyAsync(async () => (dead = await CurlAsync("dead.mtls.test", "/", null)).Status == 502, TimeSpan.FromSeconds(30)));
        Assert.Equal("max-age=600", dead.Header("strict-transport-security"));

        var plainHttp = await Tools.RunAsync("curl", ["-sS", "-i", "--max-time", "20", "-H", "Host: open.mtls.test", $"http://127.0.0.1:{_gatehouse.HttpPort}/"], _gatehouse.Directory);
        Assert.Contains(" 308", plainHttp.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("strict-transport-security", plainHttp.StandardOutput, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task HotChange_ClientCaOfRequiredSite_AppliesToNewHandshakesWithoutPreparingTheCertificateAgain()
    {
        Assert.True(_gatehouse.Server.Cache.TryMatch("required.mtls.test", out var before));
        var leaf = before.Leaf;
        Assert.NotNull(leaf);

        // The wrong CA's client has the good client's subject and SAN: only the bundle decides.
        _gatehouse.WriteConfig(Sites(requiredCaFile: "wrong-ca.pem"));
        try
        {
            var switched = await GatehouseInstance.EventuallyAsync(async () => (await CurlAsync("required.mtls.test", "/", _certs.FromWrongCa)).Status == 200, TimeSpan.FromSeconds(30));
            Assert.True(switched, $"the new client CA was not applied; logs:\n{string.Join('\n', _gatehouse.Logs.TakeLast(20))}");
            Assert.Null((await CurlAsync("required.mtls.test", "/", _certs.Good)).Status);

            Assert.True(_gatehouse.Server.Cache.TryMatch("required.mtls.test", out var after));
            Assert.Same(before, after);
            Assert.Same(leaf, after.Leaf);
        }
        finally
        {
            _gatehouse.WriteConfig(Sites(requiredCaFile: "client-ca.pem"));
            Assert.True(await GatehouseInstance.EventuallyAsync(async () => (await CurlAsync("required.mtls.test", "/", _certs.Good)).Status == 200, TimeSpan.FromSeconds(30)));
        }
    }

    [Fact]
    public async Task Cli_AddSiteWithClientAuthAndHsts_IsListedAndEnforced()
    {
        string[] cli = ["--admin", $"https://127.0.0.1:{_gatehouse.AdminPort}", "--data", _gatehouse.DataDirectory];
        var missingCa = await Tools.GatehouseAsync(_gatehouse.Directory, ["sites", "add", "bad.mtls.test", "--backend", _backend.Url, "--client-auth", "required", .. cli], TimeSpan.FromSeconds(60));
        Assert.Equal(1, missingCa.ExitCode);
        Assert.Contains("site:clientAuth:ca: required", missingCa.StandardError, StringComparison.Ordinal);

        var add = await Tools.GatehouseAsync(_gatehouse.Directory, ["sites", "add", "cli.mtls.test", "--backend", _backend.Url, "--client-auth", "required", "--client-ca", _certs.CaPemPath, "--client-san", "dns:client1.test", "--hsts", "30d", "--hsts-include-subdomains", .. cli], TimeSpan.FromSeconds(60));
        Assert.True(add.ExitCode == 0, add.StandardError);

        var list = await Tools.GatehouseAsync(_gatehouse.Directory, ["sites", "list", "--json", .. cli], TimeSpan.FromSeconds(60));
        var site = JsonDocument.Parse(list.StandardOutput).RootElement.EnumerateArray().Single(s => s.GetProperty("id").GetString() == "cli.mtls.test");
        Assert.Equal("required", site.GetProperty("clientAuth").GetProperty("mode").GetString());
        Assert.Equal("CN=Gatehouse Test Client CA", site.GetProperty("clientAuth").GetProperty("caSubjects")[0].GetString());
        Assert.Equal("dns:client1.test", site.GetProperty("clientAuth").GetProperty("allowedSans")[0].GetString());
        Assert.Equal("max-age=2592000; includeSubDomains", site.GetProperty("hsts").GetProperty("header").GetString());
        var plain = JsonDocument.Parse(list.StandardOutput).RootElement.EnumerateArray().Single(s => s.GetProperty("id").GetString() == "plain.mtls.test");
        Assert.False(plain.GetProperty("hsts").GetProperty("enabled").GetBoolean());
        Assert.True(plain.GetProperty("hsts").GetProperty("default").GetBoolean());
        var table = await Tools.GatehouseAsync(_gatehouse.Directory, ["sites", "list", .. cli], TimeSpan.FromSeconds(60));
        Assert.Contains("required:", table.StandardOutput, StringComparison.Ordinal);

        Assert.True(await GatehouseInstance.EventuallyAsync(async () => (await CurlAsync("cli.mtls.test", "/", _certs.Good)).Status == 200, TimeSpan.FromSeconds(30)));
        Assert.Equal("max-age=2592000; includeSubDomains", (await CurlAsync("cli.mtls.test", "/", _certs.Good)).Header("strict-transport-security"));
        Assert.Null((await CurlAsync("cli.mtls.test", "/", _certs.Stranger)).Status);
        Assert.Null((await CurlAsync("cli.mtls.test", "/", null)).Status);
    }

    private static string Indent(string text, int spaces) =>
        string.Join('\n', text.Trim().Split('\n').Select(line => new string(' ', spaces) + line));

    private async Task<CurlResponse> CurlAsync(string host, string path, ClientCertificate? certificate, string[]? headers = null)
    {
        var port = _gatehouse.HttpsPort;
        List<string> args = ["-sS", "-i", "--max-time", "20", "--resolve", $"{host}:{port}:127.0.0.1", "--cacert", _rootPem];
        if (certificate is not null)
        {
            args.AddRange(["--cert", certificate.CertPath, "--key", certificate.KeyPath]);
        }

        foreach (var header in headers ?? [])
        {
            args.AddRange(["-H", header]);
        }

        args.Add($"https://{host}:{port}{path}");
        var result = await Tools.RunAsync("curl", [.. args], _gatehouse.Directory);
        return new CurlResponse(result.ExitCode, result.StandardOutput, result.StandardError);
    }

    private Task<ToolResult> OpensslGetAsync(string host, string version, ClientCertificate? certificate, string[]? extra = null)
    {
        List<string> args = ["s_client", "-connect", $"127.0.0.1:{_gatehouse.HttpsPort}", "-servername", host, version, "-CAfile", _rootPem, "-verify_return_error", "-ign_eof", "-alpn", "http/1.1"];
        if (certificate is not null)
        {
            args.AddRange(["-cert", certificate.CertPath, "-key", certificate.KeyPath]);
        }

        args.AddRange(extra ?? []);
        return Tools.RunAsync("openssl", [.. args], _gatehouse.Directory, $"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    }
}

/// <summary>What curl -i printed: the status of the last response (null when there was none), headers, body.</summary>
internal sealed record CurlResponse(int ExitCode, string Output, string Error)
{
    public int? Status
    {
        get
        {
            var line = Output.Split("\r\n", 2)[0];
            return line.StartsWith("HTTP/", StringComparison.Ordinal) && line.Split(' ') is [_, var code, ..] && int.TryParse(code, System.Globalization.CultureInfo.InvariantCulture, out var status) ? status : null;
        }
    }

    public string Body => Output.Contains("\r\n\r\n", StringComparison.Ordinal) ? Output[(Output.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..] : "";

    public string? Header(string name)
    {
        var head = Output.Split("\r\n\r\n", 2)[0];
        foreach (var line in head.Split("\r\n").Skip(1))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && line[..colon].Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                return line[(colon + 1)..].Trim();
            }
        }

        return null;
    }

    public Dictionary<string, string> Json() => JsonSerializer.Deserialize<Dictionary<string, string>>(Body)
        ?? throw new InvalidOperationException($"not JSON: {Body}");
}
