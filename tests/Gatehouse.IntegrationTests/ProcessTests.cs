using System.Diagnostics;
using System.Text.Json;
using Gatehouse.IntegrationTests.Infrastructure;

namespace Gatehouse.IntegrationTests;

/// <summary>The real executable and real clients (curl, openssl s_client), the way the README uses them.</summary>
public sealed class ProcessTests : IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "gatehouse-proc-" + Guid.NewGuid().ToString("N")[..12]);
    private readonly int _https = Ports.Free();
    private readonly int _http = Ports.Free();
    private readonly int _admin = Ports.Free();
    private readonly int _welcome = Ports.Free();

    private string DataDirectory => Path.Combine(_directory, "data");

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_directory);
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Serve_BadConfig_ExitsWith2AndListsEveryErrorAtOnce()
    {
        var config = Path.Combine(_directory, "bad.yaml");
        await File.WriteAllTextAsync(config, """
            edge: {httpsPort: 99999}
            sites:
              - hosts: ["a..example", "*.*.example"]
                backends: [http://ok.example]
              - hosts: [dup.example]
                backends: [x]
              - hosts: [DUP.example]
                backends: [http://ok.example]
            """);
        var result = await RunAsync(["serve", "--config", config], TimeSpan.FromSeconds(60));
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("5 error(s)", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("bad.yaml: edge:httpsPort: '99999' is not a port number", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("bad.yaml: sites:0:hosts:0: 'a..example'", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("bad.yaml: sites:0:hosts:1: '*.*.example'", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("bad.yaml: sites:1:backends:0: 'x' is not an absolute URL", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("bad.yaml: sites:2:hosts:0: 'dup.example' is already claimed by sites:1", result.StandardError, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_directory, "data", "gatehouse.db")));
    }

    [Fact]
    public async Task Quickstart_ServeThenCurlThenCli_WorksEndToEnd()
    {
        var config = await WriteSampleConfigAsync();
        using var server = Start(["serve", "--config", config]);
        try
        {
            var root = Path.Combine(DataDirectory, "local-ca-root.pem");
            await WaitUntilServedAsync("localhost");
            // The default (edge:socketCompletions pool): .NET's thread pool runs socket completions.
            Assert.Contains(ServerOutput, line => line.Contains("Socket completions run on the thread pool (edge:socketCompletions pool)", StringComparison.Ordinal));
            var page = await RunToolAsync("curl", ["-sS", "--cacert", root, $"https://localhost:{_https}/"]);
            Assert.Contains("Gatehouse is serving this site over HTTPS", page.StandardOutput, StringComparison.Ordinal);
            Assert.Contains("X-Forwarded-Proto: https", page.StandardOutput, StringComparison.Ordinal);

            var redirect = await RunToolAsync("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", $"http://localhost:{_http}/x"]);
            Assert.Equal($"308 https://localhost:{_https}/x", redirect.StandardOutput);

            var unknown = await RunToolAsync("openssl", ["s_client", "-connect", $"127.0.0.1:{_https}", "-servername", "unknown.example", "-brief"], stdin: "");
            Assert.Contains("unrecognized name", unknown.StandardError + unknown.StandardOutput, StringComparison.OrdinalIgnoreCase);

            var tls12 = await RunToolAsync("openssl", ["s_client", "-connect", $"127.0.0.1:{_https}", "-servername", "localhost", "-tls1_2", "-CAfile", root, "-verify_return_error", "-brief"], stdin: "");
            Assert.Contains("Protocol version: TLSv1.2", tls12.StandardError + tls12.StandardOutput, StringComparison.Ordinal);

            // The server itself refuses TLS 1.1 (alert protocol_version) and non-AEAD suites, whatever the client offers.
            var tls11 = await RunToolAsync("openssl", ["s_client", "-connect", $"127.0.0.1:{_https}", "-servername", "localhost", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", "-brief"], stdin: "");
            Assert.Contains("alert protocol version", tls11.StandardError + tls11.StandardOutput, StringComparison.Ordinal);
            var cbc = await RunToolAsync("openssl", ["s_client", "-connect", $"127.0.0.1:{_https}", "-servername", "localhost", "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256", "-brief"], stdin: "");
            Assert.Contains("alert handshake failure", cbc.StandardError + cbc.StandardOutput, StringComparison.Ordinal);

            string[] cli = ["--admin", $"https://127.0.0.1:{_admin}", "--data", DataDirectory];
            var add = await RunAsync(["sites", "add", "app.localhost", "--backend", $"http://127.0.0.1:{_welcome}", .. cli], TimeSpan.FromSeconds(60));
            Assert.True(add.ExitCode == 0, add.StandardError);
            Assert.Contains("Added site app.localhost", add.StandardOutput, StringComparison.Ordinal);

            var passthrough = await RunAsync(["sites", "add", "pass.localhost", "--mode", "passthrough", "--proxy-protocol", "v2", "--backend", "127.0.0.1:9", .. cli], TimeSpan.FromSeconds(60));
            Assert.True(passthrough.ExitCode == 0, passthrough.StandardError);
            Assert.Contains("Added site pass.localhost (passthrough): pass.localhost → tcp://127.0.0.1:9", passthrough.StandardOutput, StringComparison.Ordinal);
            var proxyWithoutMode = await RunAsync(["sites", "add", "offload.localhost", "--proxy-protocol", "v1", "--backend", "http://127.0.0.1:9", .. cli], TimeSpan.FromSeconds(60));
            Assert.Equal(1, proxyWithoutMode.ExitCode);
            Assert.Contains("site:proxyProtocol: only a passthrough site sends a PROXY protocol header", proxyWithoutMode.StandardError, StringComparison.Ordinal);

            var list = await RunAsync(["sites", "list", "--json", .. cli], TimeSpan.FromSeconds(60));
            var listed = JsonDocument.Parse(list.StandardOutput).RootElement.EnumerateArray().ToList();
            Assert.Equal(["app.localhost", "localhost", "pass.localhost"], listed.Select(s => s.GetProperty("id").GetString()));
            Assert.Equal(["offload", "offload", "passthrough"], listed.Select(s => s.GetProperty("mode").GetString()));
            var sitesTable = await RunAsync(["sites", "list", .. cli], TimeSpan.FromSeconds(60));
            Assert.Contains("passthrough (PROXY v2)", sitesTable.StandardOutput, StringComparison.Ordinal);

            Assert.True(await GatehouseInstance.EventuallyAsync(async () =>
            {
                var certs = await RunAsync(["certs", "list", "--json", .. cli], TimeSpan.FromSeconds(60));
                return JsonDocument.Parse(certs.StandardOutput).RootElement.EnumerateArray().Any(c => c.GetProperty("id").GetString() == "app.localhost" && c.GetProperty("served").GetBoolean());
            }, TimeSpan.FromSeconds(10)));

            var table = await RunAsync(["certs", "list", .. cli], TimeSpan.FromSeconds(60));
            Assert.Contains("app.localhost", table.StandardOutput, StringComparison.Ordinal);

            var invalid = await RunAsync(["sites", "add", "bad..name", "--backend", "nope", .. cli], TimeSpan.FromSeconds(60));
            Assert.Equal(1, invalid.ExitCode);
            Assert.Contains("site:hosts:0: 'bad..name' is not a valid host name", invalid.StandardError, StringComparison.Ordinal);

            var remove = await RunAsync(["sites", "remove", "app.localhost", .. cli], TimeSpan.FromSeconds(60));
            Assert.Equal(0, remove.ExitCode);

            var unauthorized = await RunAsync(["sites", "list", .. cli], TimeSpan.FromSeconds(60), new() { ["GATEHOUSE_ADMIN_TOKEN"] = "wrong" });
            Assert.Equal(1, unauthorized.ExitCode);
            Assert.Contains("HTTP 401", unauthorized.StandardError, StringComparison.Ordinal);
        }
        finally
        {
            if (!server.HasExited)
            {
                await RunToolAsync("kill", ["-TERM", server.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            }

            using var stopped = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await server.WaitForExitAsync(stopped.Token);
        }

        Assert.Equal(0, server.ExitCode); // SIGTERM stops cleanly
    }

    [Fact]
    public async Task KilledWithSigkill_RestartsWithEverySiteCertificateAndKey()
    {
        var config = await WriteSampleConfigAsync();
        string[] cli = ["--admin", $"https://127.0.0.1:{_admin}", "--data", DataDirectory];
        var serials = new Dictionary<string, string>();
        // The first run with socket completions inline: `serve` asks the runtime before its first socket, the probe at
        // start-up finds completions on the I/O threads, and the admin API's work (sites added, certificates issued
        // and sealed) runs in the control plane.
        using (var first = Start(["serve", "--config", config, "--edge:socketCompletions=inline"]))
        {
            await WaitUntilServedAsync("localhost");
            Assert.Contains(ServerOutput, line => line.Contains("Socket completions run inline", StringComparison.Ordinal));
            for (var i = 0; i < 5; i++)
            {
                Assert.Equal(0, (await RunAsync(["sites", "add", $"k{i}.localhost", "--backend", $"http://127.0.0.1:{_welcome}", .. cli], TimeSpan.FromSeconds(60))).ExitCode);
            }

            Assert.True(await GatehouseInstance.EventuallyAsync(async () =>
            {
                var certs = JsonDocument.Parse((await RunAsync(["certs", "list", "--json", .. cli], TimeSpan.FromSeconds(60))).StandardOutput).RootElement;
                serials = certs.EnumerateArray().Where(c => c.GetProperty("served").GetBoolean()).ToDictionary(c => c.GetProperty("id").GetString()!, c => c.GetProperty("serial").GetString()!);
                return serials.Count == 6;
            }, TimeSpan.FromSeconds(20)));

            first.Kill(); // SIGKILL: no shutdown, no WAL checkpoint
            await first.WaitForExitAsync();
        }

        using var second = Start(["serve", "--config", config]);
        try
        {
            await WaitUntilServedAsync("k4.localhost");
            var certs = JsonDocument.Parse((await RunAsync(["certs", "list", "--json", .. cli], TimeSpan.FromSeconds(60))).StandardOutput).RootElement;
            var after = certs.EnumerateArray().ToDictionary(c => c.GetProperty("id").GetString()!, c => c.GetProperty("serial").GetString()!);
            Assert.Equal(serials.OrderBy(p => p.Key), after.OrderBy(p => p.Key)); // the same certificates: nothing lost, nothing reissued
        }
        finally
        {
            second.Kill();
            await second.WaitForExitAsync();
        }
    }

    /// <summary>The quickstart's config, on this test's ports: one site served by the built-in sample backend.</summary>
    private async Task<string> WriteSampleConfigAsync()
    {
        var config = Path.Combine(_directory, "gatehouse.yaml");
        await File.WriteAllTextAsync(config, $$"""
            dataDirectory: ./data
            edge: {address: 127.0.0.1, httpsPort: {{_https}}, httpPort: {{_http}}}
            admin: {address: 127.0.0.1, port: {{_admin}}}
            welcome: {port: {{_welcome}}}
            sites:
              - hosts: [localhost]
                backends: [http://127.0.0.1:{{_welcome}}]
            """);
        return config;
    }

    /// <summary>Waits (up to a minute: a cold start compiles a lot) until curl gets an answer for <paramref name="host"/>.</summary>
    private async Task WaitUntilServedAsync(string host)
    {
        var root = Path.Combine(DataDirectory, "local-ca-root.pem");
        string[] args = ["-sS", "-o", "/dev/null", "--cacert", root, "--resolve", $"{host}:{_https}:127.0.0.1", $"https://{host}:{_https}/"];
        Assert.True(
            await GatehouseInstance.EventuallyAsync(async () => (await RunToolAsync("curl", args)).ExitCode == 0, TimeSpan.FromSeconds(60)),
            $"{host} was never served; the server said:\n{ServerLog}");
    }

    /// <summary>What the servers this test started printed (shown when a test fails because one did not serve).</summary>
    private System.Collections.Concurrent.ConcurrentQueue<string> ServerOutput { get; } = new();

    private string ServerLog => string.Join('\n', ServerOutput.Where(l => !l.StartsWith('{')).TakeLast(30));

    private static string GatehouseDll => Tools.GatehouseDll;

    private Process Start(string[] args, Dictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = _directory, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        start.ArgumentList.Add(GatehouseDll);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment.Remove(Gatehouse.Edge.SocketCompletions.Variable); // what `serve` chooses, not this test run's
        foreach (var (key, value) in environment ?? [])
        {
            start.Environment[key] = value;
        }

        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, e) => ServerOutput.Enqueue(e.Data ?? "");
        process.ErrorDataReceived += (_, e) => ServerOutput.Enqueue(e.Data ?? "");
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private Task<ToolResult> RunAsync(string[] args, TimeSpan timeout, Dictionary<string, string>? environment = null) =>
        RunToolAsync("dotnet", [GatehouseDll, .. args], timeout: timeout, environment: environment);

    private Task<ToolResult> RunToolAsync(string tool, string[] args, string? stdin = null, TimeSpan? timeout = null, Dictionary<string, string>? environment = null) =>
        Tools.RunAsync(tool, args, _directory, stdin, timeout, environment);
}
