using System.Diagnostics;
using Gatehouse.IntegrationTests.Infrastructure;

namespace Gatehouse.IntegrationTests.Keys;

/// <summary>The real executable with a PKCS#11 provider over SoftHSM2: start-up errors, and moving a running
/// installation from its key file into the HSM (rotate, rewrap, retire, drop the key file).</summary>
[Collection(SoftHsm.Collection)]
public sealed class HsmServeTests(SoftHsm hsm) : IClassFixture<SoftHsm>, IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("gatehouse-hsm-").FullName;
    private readonly int _httpsPort = Ports.Free();

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Theory]
    [InlineData("wrong-pin", "Wrong PIN")]
    [InlineData("missing-token", "no-such-token")]
    [InlineData("missing-label", "no-such-key")]
    public async Task StartUp_WithABadHsmSetting_StopsWithOneLineNamingTheCause(string fault, string expected)
    {
        var config = WriteConfig(
            provider: "hsm",
            token: fault == "missing-token" ? "no-such-token" : hsm.TokenLabel,
            label: fault == "missing-label" ? "no-such-key" : "gatehouse-master");

        var result = await Tools.GatehouseAsync(_directory, ["serve", "--config", config], TimeSpan.FromSeconds(60), Environment(fault == "wrong-pin" ? "not-the-pin" : hsm.Pin));

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("gatehouse: cannot start:", result.StandardError, StringComparison.Ordinal);
        Assert.Contains(expected, result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain(hsm.Pin, result.StandardError + result.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("not-the-pin", result.StandardError + result.StandardOutput, StringComparison.Ordinal);
        if (fault == "missing-label")
        {
            Assert.Contains("gatehouse keys init", result.StandardError, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task MoveFromKeyFileToHsm_RotateRewrapRetire_ThenServeWithoutTheKeyFile()
    {
        var both = WriteConfig(provider: "local", token: hsm.TokenLabel, label: "gatehouse-master", withSoftware: true);
        var pin = Environment(hsm.Pin);
        var before = await ServeUntilServedAsync(both, pin);

        Assert.Equal(0, (await Keys(both, pin, "rotate", "--provider", "hsm")).ExitCode);
        var rewrap = await Keys(both, pin, "rewrap");
        Assert.True(rewrap.ExitCode == 0, rewrap.StandardError);
        Assert.Equal(0, (await Keys(both, pin, "retire", "1")).ExitCode);
        var list = await Keys(both, pin, "list", "--json");
        Assert.Contains("\"kind\": \"pkcs11\"", list.StandardOutput, StringComparison.Ordinal);

        // The key file is no longer needed: drop it and its provider; the same certificates are served.
        File.Delete(Path.Combine(_directory, "data", "master.key"));
        var hsmOnly = WriteConfig(provider: "hsm", token: hsm.TokenLabel, label: "gatehouse-master");
        var after = await ServeUntilServedAsync(hsmOnly, pin);

        Assert.Equal(before, after);
        Assert.False(File.Exists(Path.Combine(_directory, "data", "master.key")));
    }

    private string WriteConfig(string provider, string token, string label, bool withSoftware = false)
    {
        var path = Path.Combine(_directory, "gatehouse.yaml");
        File.WriteAllText(path, $"""
            dataDirectory: ./data
            edge: {"{"}address: 127.0.0.1, httpsPort: {_httpsPort}, httpPort: {Ports.Free()}{"}"}
            admin: {"{"}address: 127.0.0.1, port: {Ports.Free()}{"}"}
            welcome: {"{"}port: {Ports.Free()}{"}"}
            keys:
              provider: {provider}
              providers:
                {(withSoftware ? "local: {type: software, file: master.key}" : "")}
                hsm: {"{"}type: pkcs11, library: {hsm.LibraryPath}, token: {token}, label: {label}, pinEnv: GATEHOUSE_TEST_PIN{"}"}
            sites:
              - hosts: [hsm.test]
                backends: [http://127.0.0.1:1]
            """);
        return path;
    }

    private static Dictionary<string, string> Environment(string pin) => new() { ["GATEHOUSE_TEST_PIN"] = pin };

    private Task<ToolResult> Keys(string config, Dictionary<string, string> environment, params string[] args) =>
        Tools.GatehouseAsync(_directory, ["keys", .. args, "--config", config], TimeSpan.FromSeconds(60), environment);

    /// <summary>Runs serve until hsm.test's certificate is presented; returns its serial and stops the server.</summary>
    private async Task<string> ServeUntilServedAsync(string config, Dictionary<string, string> environment)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = _directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { Tools.GatehouseDll, "serve", "--config", config })
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        using var server = Process.Start(start)!;
        var errors = server.StandardError.ReadToEndAsync();
        _ = server.StandardOutput.ReadToEndAsync();
        try
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (DateTime.UtcNow < deadline && !server.HasExited)
            {
                var root = Path.Combine(_directory, "data", "local-ca-root.pem");
                if (File.Exists(root))
                {
                    var probe = await Tools.RunAsync("openssl", ["s_client", "-connect", $"127.0.0.1:{_httpsPort}", "-servername", "hsm.test", "-CAfile", root, "-verify_return_error", "-brief"], _directory, stdin: "", timeout: TimeSpan.FromSeconds(10));
                    if (probe.ExitCode == 0)
                    {
                        var serial = await Tools.RunAsync("bash", ["-c", $"openssl s_client -connect 127.0.0.1:{_httpsPort} -servername hsm.test </dev/null 2>/dev/null | openssl x509 -noout -serial"], _directory);
                        return serial.StandardOutput.Trim();
                    }
                }

                await Task.Delay(200);
            }

            throw new InvalidOperationException($"hsm.test was not served: {(server.HasExited ? await errors : "still starting")}");
        }
        finally
        {
            if (!server.HasExited)
            {
                server.Kill();
                await server.WaitForExitAsync();
            }
        }
    }
}
