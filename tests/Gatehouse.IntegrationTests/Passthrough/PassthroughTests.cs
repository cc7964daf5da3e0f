using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Gatehouse.IntegrationTests.Infrastructure;
using Gatehouse.Storage;

namespace Gatehouse.IntegrationTests.Passthrough;

/// <summary>
/// Passthrough sites on one server: the edge reads the SNI name, does not terminate TLS, and splices the connection
/// to the site's backends (our own PROXY-parsing TLS backends, and raw TCP ones), with curl, openssl s_client and
/// .NET clients.
/// </summary>
public sealed class PassthroughTests : IAsyncLifetime
{
    private static readonly string[] BackendNames = ["v1.pass.test", "v2.pass.test", "plain.pass.test", "*.wild.pass.test", "failover.pass.test", "drain.pass.test"];

    private TestCa _ca = null!;
    private ProxiedTlsBackend _one = null!;
    private ProxiedTlsBackend _two = null!;
    private RawTcpBackend _countUntilEof = null!;
    private RawTcpBackend _finFirst = null!;
    private Backend _offload = null!;
    private GatehouseInstance _gatehouse = null!;
    private int _deadPort;
    private string _rootPem = null!;

    public async Task InitializeAsync()
    {
        _ca = new TestCa("Passthrough Backend", BackendNames);
        _one = ProxiedTlsBackend.Start("one", _ca);
        _two = ProxiedTlsBackend.Start("two", _ca);
        _countUntilEof = RawTcpBackend.Start(RawBackendBehavior.CountUntilEof);
        _finFirst = RawTcpBackend.Start(RawBackendBehavior.FinFirst);
        _offload = await Backend.StartAsync("offload");
        _deadPort = Ports.Free();
        _gatehouse = await GatehouseInstance.StartAsync(Sites(drainBackend: _one.Address));
        _rootPem = _ca.WriteRootPem(_gatehouse.Directory);
        Assert.True(await GatehouseInstance.EventuallyAsync(() => Task.FromResult(_gatehouse.Server.Cache.Count == 1), TimeSpan.FromSeconds(20)));
    }

    private string Sites(string drainBackend) => $$"""

          - hosts: [v1.pass.test]
            mode: passthrough
            proxyProtocol: v1
            backends: [{{_one.Address}}]
          - hosts: [v2.pass.test, "*.wild.pass.test"]
            mode: passthrough
            proxyProtocol: v2
            backends: ["tcp://{{_one.Address}}"]
          - hosts: [plain.pass.test]
            mode: passthrough
            backends: [{{_two.Address}}]
          - hosts: [failover.pass.test]
            mode: passthrough
            proxyProtocol: v2
            backends: ["127.0.0.1:{{_deadPort}}", {{_two.Address}}]
          - hosts: [drain.pass.test]
            mode: passthrough
            proxyProtocol: v1
            backends: [{{drainBackend}}]
          - hosts: [half-close-client.pass.test]
            mode: passthrough
            proxyProtocol: v1
            backends: [{{_countUntilEof.Address}}]
          - hosts: [half-close-backend.pass.test]
            mode: passthrough
            proxyProtocol: v2
            backends: [{{_finFirst.Address}}]
          - hosts: [exact.wild.pass.test]
            backends: [{{_offload.Url}}]
        """;

    public async Task DisposeAsync()
    {
        await _gatehouse.DisposeAsync();
        await _one.DisposeAsync();
        await _two.DisposeAsync();
        await _countUntilEof.DisposeAsync();
        await _finFirst.DisposeAsync();
        await _offload.DisposeAsync();
        _ca.Dispose();
    }

    [Theory]
    [InlineData("v1.pass.test", "one", "v1")]
    [InlineData("v2.pass.test", "one", "v2")]
    [InlineData("x.wild.pass.test", "one", "v2")]
    [InlineData("plain.pass.test", "two", "none")]
    public async Task Curl_PassthroughSite_BackendTerminatesTlsAndLearnsTheClientAddress(string host, string backend, string proxy)
    {
        var port = _gatehouse.HttpsPort.ToString(CultureInfo.InvariantCulture);
        var result = await Tools.RunAsync("curl", ["-sS", "--max-time", "20", "--resolve", $"{host}:{port}:127.0.0.1", "--cacert", _rootPem, "-w", "\n%{local_port}", $"https://{host}:{port}/"], _gatehouse.Directory);

        // curl trusts only the backend's CA: the handshake succeeding proves the backend presented its certificate.
        Assert.True(result.ExitCode == 0, $"curl: {result.StandardError}; backend errors: {string.Join("; ", _one.Errors.Concat(_two.Errors))}");
        var lines = result.StandardOutput.Split('\n');
        var seen = JsonSerializer.Deserialize<JsonElement>(lines[0]);
        Assert.Equal(backend, seen.GetProperty("backend").GetString());
        Assert.Equal(proxy, seen.GetProperty("proxy").GetString());
        Assert.Equal(host, seen.GetProperty("sni").GetString());
        if (proxy == "none")
        {
            Assert.Equal(JsonValueKind.Null, seen.GetProperty("source").ValueKind);
            return;
        }

        Assert.Equal("TCP4", seen.GetProperty("family").GetString());
        Assert.Equal("127.0.0.1", seen.GetProperty("source").GetString());
        Assert.Equal(int.Parse(lines[1], CultureInfo.InvariantCulture), seen.GetProperty("sourcePort").GetInt32()); // curl's own source port
        Assert.Equal("127.0.0.1", seen.GetProperty("destination").GetString());
        Assert.Equal(_gatehouse.HttpsPort, seen.GetProperty("destinationPort").GetInt32());
    }

    [Fact]
    public async Task OpensslSClient_PassthroughSite_VerifiesTheBackendCertificateAndGetsAnAnswer()
    {
        var result = await Tools.RunAsync(
            "openssl",
            ["s_client", "-connect", $"127.0.0.1:{_gatehouse.HttpsPort}", "-servername", "v2.pass.test", "-CAfile", _rootPem, "-verify_return_error", "-ign_eof"],
            _gatehouse.Directory,
            "GET / HTTP/1.1\r\nHost: v2.pass.test\r\nConnection: close\r\n\r\n");
        Assert.True(result.ExitCode == 0, result.StandardOutput + result.StandardError);
        Assert.Contains("CN = Passthrough Backend Leaf", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("Verify return code: 0 (ok)", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("\"proxy\":\"v2\"", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("\"source\":\"127.0.0.1\"", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DotNetClient_PassthroughSite_SeesTheBackendsLeafAndItsOwnPortArrives()
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, _gatehouse.HttpsPort);
        await using var tls = new SslStream(tcp.GetStream());
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "v1.pass.test", CertificateChainPolicy = GatehouseInstance.TrustOnly(_ca.Root) });
        Assert.Equal(_ca.Leaf.Thumbprint, tls.RemoteCertificate!.GetCertHashString());
        var localPort = ((IPEndPoint)tcp.Client.LocalEndPoint!).Port;
        var seen = await RequestAsync(tls, "v1.pass.test");
        Assert.Equal(localPort, seen.GetProperty("sourcePort").GetInt32());
    }

    [Theory]
    [InlineData("unknown.pass.test")]
    [InlineData("a.b.wild.pass.test")] // a wildcard covers one level
    [InlineData(null)]
    public async Task Handshake_NameNoSiteServes_GetsUnrecognizedNameAndNoBackendIsContacted(string? serverName)
    {
        var before = _one.Connections + _two.Connections;
        Assert.Equal(new byte[] { 21, 3, 3, 0, 2, 2, 112 }, await EdgeTests.RawHandshakeAsync(_gatehouse.HttpsPort, serverName));
        Assert.Equal(before, _one.Connections + _two.Connections);
    }

    [Fact]
    public async Task Handshake_ExactOffloadName_WinsOverAPassthroughWildcard()
    {
        await using var tls = await _gatehouse.HandshakeAsync("exact.wild.pass.test"); // trusts only the local CA
        Assert.Contains("exact.wild.pass.test", tls.RemoteCertificate!.Subject, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PassthroughSites_GetNoCertificate_AndTheApiShowsTheirMode()
    {
        foreach (var id in new[] { "v1.pass.test", "v2.pass.test", "plain.pass.test", "failover.pass.test" })
        {
            Assert.Null(await _gatehouse.Server.Store.GetAsync(StoreKeys.Certificate(id)));
        }

        Assert.NotNull(await _gatehouse.Server.Store.GetAsync(StoreKeys.Certificate("exact.wild.pass.test")));
        using var admin = _gatehouse.AdminClient();
        var sites = JsonSerializer.Deserialize<JsonElement>(await admin.GetStringAsync("v1/sites")).EnumerateArray().ToDictionary(s => s.GetProperty("id").GetString()!);
        Assert.Equal("passthrough", sites["v2.pass.test"].GetProperty("mode").GetString());
        Assert.Equal("v2", sites["v2.pass.test"].GetProperty("proxyProtocol").GetString());
        Assert.Equal($"tcp://{_one.Address}", sites["v1.pass.test"].GetProperty("backends")[0].GetString());
        Assert.Equal(0, sites["v1.pass.test"].GetProperty("issuers").GetArrayLength());
        Assert.Equal("offload", sites["exact.wild.pass.test"].GetProperty("mode").GetString());
    }

    [Fact]
    public async Task BackendDown_TheNextBackendTakesEveryConnection()
    {
        for (var i = 0; i < 4; i++)
        {
            using var tcp = new TcpClient();
            await tcp.ConnectAsync(IPAddress.Loopback, _gatehouse.HttpsPort);
            await using var tls = new SslStream(tcp.GetStream());
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "failover.pass.test", CertificateChainPolicy = GatehouseInstance.TrustOnly(_ca.Root) });
            var seen = await RequestAsync(tls, "failover.pass.test");
            Assert.Equal("two", seen.GetProperty("backend").GetString());
        }

        Assert.Contains(_gatehouse.Logs, line => line.Contains($"backend tcp://127.0.0.1:{_deadPort} refused a connection", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ClientHalfClose_ReachesTheBackend_WhichCanStillAnswer()
    {
        var hello = await ClientHelloBytes.CaptureAsync("half-close-client.pass.test");
        using var socket = await ConnectAsync();
        await socket.SendAsync(hello);
        await socket.SendAsync("and then some"u8.ToArray());
        socket.Shutdown(SocketShutdown.Send);
        var answer = await ReadToEndAsync(socket);
        Assert.Equal($"got {hello.Length + 13}\n", answer);
    }

    [Fact]
    public async Task BackendHalfClose_ReachesTheClient_WhichCanStillSend()
    {
        var hello = await ClientHelloBytes.CaptureAsync("half-close-backend.pass.test");
        using var socket = await ConnectAsync();
        await socket.SendAsync(hello);
        Assert.Equal("bye\n", await ReadToEndAsync(socket)); // the backend's FIN arrived while this side is open
        await socket.SendAsync("still here"u8.ToArray());
        socket.Shutdown(SocketShutdown.Send);
        Assert.True(await GatehouseInstance.EventuallyAsync(() => Task.FromResult(!_finFirst.ReceivedUntilEof.IsEmpty), TimeSpan.FromSeconds(20)), string.Join("; ", _finFirst.Ends));
        Assert.Equal(hello.Length + 10, Assert.Single(_finFirst.ReceivedUntilEof));
    }

    [Fact]
    public async Task BackendRemoved_ItsOpenConnectionsDrain_NewOnesGoToTheNewBackend()
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, _gatehouse.HttpsPort);
        await using var open = new SslStream(tcp.GetStream());
        await open.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "drain.pass.test", CertificateChainPolicy = GatehouseInstance.TrustOnly(_ca.Root) });

        _gatehouse.WriteConfig(Sites(drainBackend: _two.Address));
        var moved = await GatehouseInstance.EventuallyAsync(async () =>
        {
            using var next = new TcpClient();
            await next.ConnectAsync(IPAddress.Loopback, _gatehouse.HttpsPort);
            await using var tls = new SslStream(next.GetStream());
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "drain.pass.test", CertificateChainPolicy = GatehouseInstance.TrustOnly(_ca.Root) });
            return (await RequestAsync(tls, "drain.pass.test")).GetProperty("backend").GetString() == "two";
        }, TimeSpan.FromSeconds(20));
        Assert.True(moved, "new connections did not move to the new backend");

        // The connection opened before the change still reaches the removed backend.
        Assert.Equal("one", (await RequestAsync(open, "drain.pass.test")).GetProperty("backend").GetString());
    }

    private Task<Socket> ConnectAsync() => ConnectAsync(_gatehouse.HttpsPort);

    internal static async Task<Socket> ConnectAsync(int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, port);
        return socket;
    }

    /// <summary>Reads until the peer closes (FIN, or a reset after it) within a generous deadline; returns the bytes.</summary>
    internal static async Task<byte[]> ReadUntilClosedAsync(Socket socket)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var received = new MemoryStream();
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                var read = await socket.ReceiveAsync(buffer, SocketFlags.None, deadline.Token);
                if (read == 0)
                {
                    break;
                }

                received.Write(buffer, 0, read);
            }
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
        {
            // closed by an abort
        }

        return received.ToArray();
    }

    private static async Task<string> ReadToEndAsync(Socket socket) => Encoding.ASCII.GetString(await ReadUntilClosedAsync(socket));

    /// <summary>Sends one GET over <paramref name="tls"/> and returns the backend's JSON answer.</summary>
    internal static async Task<JsonElement> RequestAsync(SslStream tls, string host)
    {
        await tls.WriteAsync(Encoding.ASCII.GetBytes($"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"));
        using var reader = new StreamReader(tls);
        var response = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(20));
        Assert.StartsWith("HTTP/1.1 200 OK", response, StringComparison.Ordinal);
        return JsonSerializer.Deserialize<JsonElement>(response[(response.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..]);
    }
}
