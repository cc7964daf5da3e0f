using System.Net.Sockets;
using System.Text;
using Gatehouse.IntegrationTests.Infrastructure;

namespace Gatehouse.IntegrationTests.Passthrough;

/// <summary>
/// What never reaches a passthrough backend (garbage, a truncated ClientHello, a client that sends nothing: closed by
/// the handshake timeout) and how long an idle spliced connection lives, on a server with short limits
/// (<c>edge:handshakeTimeout: 1s</c>, <c>edge:passthroughIdleTimeout: 2s</c>). The deadlines below are generous
/// bounds on "closed at all", not measurements.
/// </summary>
public sealed class PassthroughLimitsTests : IAsyncLifetime
{
    private ProxiedTlsBackend _backend = null!;
    private RawTcpBackend _holding = null!;
    private TestCa _ca = null!;
    private GatehouseInstance _gatehouse = null!;

    public async Task InitializeAsync()
    {
        _ca = new TestCa("Limits Backend", "pass.test");
        _backend = ProxiedTlsBackend.Start("limits", _ca);
        _holding = RawTcpBackend.Start(RawBackendBehavior.Hold);
        _gatehouse = await GatehouseInstance.StartAsync(
            $$"""

              - hosts: [pass.test]
                mode: passthrough
                proxyProtocol: v2
                backends: [{{_backend.Address}}]
              - hosts: [idle.test]
                mode: passthrough
                backends: [{{_holding.Address}}]
            """,
            edgeYaml: "handshakeTimeout: 1s, passthroughIdleTimeout: 2s");
    }

    public async Task DisposeAsync()
    {
        await _gatehouse.DisposeAsync();
        await _backend.DisposeAsync();
        await _holding.DisposeAsync();
        _ca.Dispose();
    }

    [Fact]
    public async Task Garbage_IsClosed_AndNothingReachesTheBackend()
    {
        using var socket = await ConnectAsync();
        await socket.SendAsync(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: pass.test\r\n\r\n"));
        Assert.Equal(0, await ReceiveUntilClosedAsync(socket));
        Assert.Equal(0, _backend.Connections);
    }

    [Fact]
    public async Task TruncatedClientHello_IsClosedByTheHandshakeTimeout_AndNothingReachesTheBackend()
    {
        var hello = await ClientHelloBytes.CaptureAsync("pass.test");
        using var socket = await ConnectAsync();
        await socket.SendAsync(hello.AsMemory(0, hello.Length / 2));
        Assert.Equal(0, await ReceiveUntilClosedAsync(socket));
        Assert.Equal(0, _backend.Connections);
    }

    [Fact]
    public async Task SilentClient_IsClosedByTheHandshakeTimeout_AndNothingReachesTheBackend()
    {
        using var socket = await ConnectAsync();
        Assert.Equal(0, await ReceiveUntilClosedAsync(socket));
        Assert.Equal(0, _backend.Connections);
    }

    [Fact]
    public async Task IdleSplicedConnection_IsClosedAfterTheIdleTimeout()
    {
        var hello = await ClientHelloBytes.CaptureAsync("idle.test");
        using var socket = await ConnectAsync();
        await socket.SendAsync(hello);

        // The backend holds the connection open and never answers: only the edge's idle timeout ends it.
        Assert.Equal(0, await ReceiveUntilClosedAsync(socket));
        Assert.True(await GatehouseInstance.EventuallyAsync(() => Task.FromResult(_holding.Ends.Count == 1), TimeSpan.FromSeconds(20)), "the backend side was not closed");
    }

    private Task<Socket> ConnectAsync() => PassthroughTests.ConnectAsync(_gatehouse.HttpsPort);

    private static async Task<int> ReceiveUntilClosedAsync(Socket socket) => (await PassthroughTests.ReadUntilClosedAsync(socket)).Length;
}
