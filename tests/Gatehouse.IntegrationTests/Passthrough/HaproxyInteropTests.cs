using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Gatehouse.IntegrationTests.Infrastructure;

namespace Gatehouse.IntegrationTests.Passthrough;

/// <summary>
/// A real PROXY protocol implementation as the passthrough backend: Debian's HAProxy with <c>bind ... ssl crt FILE
/// accept-proxy</c>, answering with the client address it took from the header. One site sends v1, one v2; curl
/// goes through the edge to HAProxy, which terminates TLS with its own certificate.
/// </summary>
public sealed class HaproxyInteropTests : IAsyncLifetime
{
    private TestCa _ca = null!;
    private Process _haproxy = null!;
    private GatehouseInstance _gatehouse = null!;
    private string _directory = null!;
    private string _rootPem = null!;
    private readonly List<string> _haproxyOutput = [];

    public async Task InitializeAsync()
    {
        _directory = Directory.CreateTempSubdirectory("gatehouse-haproxy-").FullName;
        _ca = new TestCa("HAProxy Backend", "v1.haproxy.test", "v2.haproxy.test");
        _rootPem = _ca.WriteRootPem(_directory);
        var crt = _ca.WriteLeafWithKeyPem(_directory);
        var port = Ports.Free();
        var config = Path.Combine(_directory, "haproxy.cfg");
        await File.WriteAllTextAsync(config, $$"""
            global
                maxconn 100

            defaults
                mode http
                timeout connect 5s
                timeout client 30s
                timeout server 30s

            frontend proxied
                bind 127.0.0.1:{{port}} ssl crt {{crt}} accept-proxy
                http-request return status 200 content-type text/plain lf-string "%[src] %[src_port] %[dst] %[dst_port] %[ssl_fc_sni]\n"

            """);
        var start = new ProcessStartInfo("haproxy") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "-db", "-f", config })
        {
            start.ArgumentList.Add(arg);
        }

        _haproxy = Process.Start(start)!;
        _haproxy.OutputDataReceived += (_, e) => { lock (_haproxyOutput) { _haproxyOutput.Add(e.Data ?? ""); } };
        _haproxy.ErrorDataReceived += (_, e) => { lock (_haproxyOutput) { _haproxyOutput.Add(e.Data ?? ""); } };
        _haproxy.BeginOutputReadLine();
        _haproxy.BeginErrorReadLine();
        var listening = await GatehouseInstance.EventuallyAsync(async () =>
        {
            using var probe = new TcpClient();
            try
            {
                await probe.ConnectAsync(IPAddress.Loopback, port);
                return true;
            }
            catch (SocketException)
            {
                return _haproxy.HasExited;
            }
        }, TimeSpan.FromSeconds(20));
        Assert.True(listening && !_haproxy.HasExited, "haproxy did not start: " + string.Join('\n', _haproxyOutput));

        _gatehouse = await GatehouseInstance.StartAsync($$"""

              - hosts: [v1.haproxy.test]
                mode: passthrough
                proxyProtocol: v1
                backends: [127.0.0.1:{{port}}]
              - hosts: [v2.haproxy.test]
                mode: passthrough
                proxyProtocol: v2
                backends: [127.0.0.1:{{port}}]
            """);
    }

    public async Task DisposeAsync()
    {
        await _gatehouse.DisposeAsync();
        if (!_haproxy.HasExited)
        {
            _haproxy.Kill();
            await _haproxy.WaitForExitAsync();
        }

        _haproxy.Dispose();
        _ca.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Theory]
    [InlineData("v1.haproxy.test")]
    [InlineData("v2.haproxy.test")]
    public async Task Curl_ThroughTheEdge_HaproxyLearnsTheClientAddressFromTheHeader(string host)
    {
        var port = _gatehouse.HttpsPort.ToString(CultureInfo.InvariantCulture);
        var result = await Tools.RunAsync("curl", ["-sS", "--max-time", "20", "--resolve", $"{host}:{port}:127.0.0.1", "--cacert", _rootPem, "-w", "%{local_port}", $"https://{host}:{port}/"], _directory);
        Assert.True(result.ExitCode == 0, $"curl: {result.StandardError}; haproxy: {string.Join('\n', _haproxyOutput)}");

        // "src src_port dst dst_port sni\n" then curl's own source port.
        var lines = result.StandardOutput.Split('\n');
        Assert.Equal($"127.0.0.1 {lines[1]} 127.0.0.1 {port} {host}", lines[0]);
    }
}
