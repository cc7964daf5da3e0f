using System.Collections.Immutable;
using System.Net;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Text;
using Gatehouse.Edge.Passthrough;
using Gatehouse.Edge.Routing;
using Gatehouse.Edge.Tls;
using Gatehouse.Keys;
using Gatehouse.Sites;
using Gatehouse.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gatehouse.Tests.Edge;

/// <summary>The SNI gate's passthrough branch over an in-memory transport (no socket: the relay falls back to
/// Kestrel's output pipe, and the endpoints are unknown to the PROXY header).</summary>
public sealed class PassthroughGateTests : IDisposable
{
    private readonly SoftwareMasterKey _master = new("local-test", 1, RandomNumberGenerator.GetBytes(32));
    private readonly TcpListener _backend = new(IPAddress.Loopback, 0);
    private readonly SiteRoutes _routes = new();
    private readonly SniGate _gate;

    public PassthroughGateTests()
    {
        _backend.Start();
        var cache = new CertificateCache(new EnvelopeCipher(new MasterKeyRing([_master], _master)), NullLogger<CertificateCache>.Instance);
        var relay = new PassthroughRelay(new PassthroughOptions(), TimeProvider.System, NullLogger<PassthroughRelay>.Instance);
        _gate = new SniGate(cache, NullLogger<SniGate>.Instance, TimeSpan.FromSeconds(10), null, _routes, relay);
        var site = new SiteDefinition
        {
            Id = "pass.test",
            Hosts = ["pass.test"],
            Backends = [$"tcp://127.0.0.1:{((IPEndPoint)_backend.LocalEndpoint).Port}"],
            Mode = SiteMode.Passthrough,
            ProxyProtocol = ProxyProtocolVersion.V1,
        };
        _routes.Apply(new MirrorSnapshot<SiteDefinition>(ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal, [KeyValuePair.Create(StoreKeys.Site(site.Id), new MirrorItem<SiteDefinition>(site, 1))]), 1));
    }

    public void Dispose()
    {
        _backend.Stop();
        _master.Dispose();
    }

    [Fact]
    public async Task PassthroughName_IsSplicedToTheBackend_HeaderAndHelloFirst_ThenBothDirectionsUntilBothEnd()
    {
        var hello = await ClientHelloTests.CaptureClientHelloAsync("pass.test", SslProtocols.Tls13, null);
        var connection = new InMemoryConnection();
        await connection.Client.WriteAsync(hello);
        await connection.Client.WriteAsync("ping"u8.ToArray());
        var gate = _gate.OnConnectionAsync(connection.Server, _ => throw new InvalidOperationException("a passthrough connection must not reach TLS"));

        using var backend = await _backend.AcceptSocketAsync().WaitAsync(TimeSpan.FromSeconds(20));
        var expected = Encoding.ASCII.GetBytes("PROXY UNKNOWN\r\n").Concat(hello).Concat("ping"u8.ToArray()).ToArray();
        var received = new byte[expected.Length];
        await new NetworkStream(backend).ReadExactlyAsync(received).AsTask().WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(expected, received);

        await backend.SendAsync("pong"u8.ToArray());
        backend.Shutdown(SocketShutdown.Send);
        Assert.Equal("pong", Encoding.ASCII.GetString(await connection.ReadAllFromServerAsync().WaitAsync(TimeSpan.FromSeconds(20))));

        // The client's end of stream reaches the backend as its FIN, and then the relay is done.
        connection.Client.Dispose();
        Assert.Equal(0, await backend.ReceiveAsync(new byte[16], SocketFlags.None).WaitAsync(TimeSpan.FromSeconds(20)));
        await gate.WaitAsync(TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task OffloadGate_WithoutSites_RefusesAPassthroughNameLikeAnyUnknownName()
    {
        var cache = new CertificateCache(new EnvelopeCipher(new MasterKeyRing([_master], _master)), NullLogger<CertificateCache>.Instance);
        var gate = new SniGate(cache, NullLogger<SniGate>.Instance, TimeSpan.FromSeconds(10), null, _routes, passthrough: null);
        var connection = new InMemoryConnection();
        await connection.Client.WriteAsync(await ClientHelloTests.CaptureClientHelloAsync("pass.test", SslProtocols.Tls13, null));
        await gate.OnConnectionAsync(connection.Server, _ => throw new InvalidOperationException("must not reach TLS"));
        Assert.Equal(new byte[] { 21, 3, 3, 0, 2, 2, 112 }, await connection.ReadAllFromServerAsync());
    }
}
