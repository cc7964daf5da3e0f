using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Gatehouse.IntegrationTests.Infrastructure;
using Gatehouse.Storage;

namespace Gatehouse.IntegrationTests;

/// <summary>One server, two backends, sites from the config file: handshakes, routing, headers, redirects, errors.</summary>
public sealed class EdgeTests : IAsyncLifetime
{
    private Backend _one = null!;
    private Backend _two = null!;
    private GatehouseInstance _gatehouse = null!;
    private int _deadPort;

    public async Task InitializeAsync()
    {
        _one = await Backend.StartAsync("one");
        _two = await Backend.StartAsync("two");
        _deadPort = Ports.Free();
        _gatehouse = await GatehouseInstance.StartAsync($$"""

              - hosts: [app.test, "*.apps.test"]
                backends: [{{_one.Url}}]
              - hosts: [pair.test]
                backends: [{{_one.Url}}, {{_two.Url}}]
              - hosts: [down.test]
                backends: [http://127.0.0.1:{{_deadPort}}]
            """);
        Assert.True(await GatehouseInstance.EventuallyAsync(() => Task.FromResult(_gatehouse.Server.Cache.Count == 3), TimeSpan.FromSeconds(10)));
    }

    public async Task DisposeAsync()
    {
        await _gatehouse.DisposeAsync();
        await _one.DisposeAsync();
        await _two.DisposeAsync();
    }

    [Theory]
    [InlineData("app.test", "app.test")]
    [InlineData("APP.Test", "app.test")]
    [InlineData("x.apps.test", "*.apps.test")]
    [InlineData("pair.test", "pair.test")]
    public async Task Handshake_SiteName_ServesItsCertificateChainedToTheLocalRoot(string serverName, string expectedSan)
    {
        var chainLength = 0;
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, _gatehouse.HttpsPort);
        await using var ssl = new SslStream(tcp.GetStream());
        var root = _gatehouse.Root;
        await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = serverName,
            RemoteCertificateValidationCallback = (_, certificate, chain, _) =>
            {
                // Trust only the local root; the intermediate must come from the server.
                chain!.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(root);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                var valid = chain.Build((X509Certificate2)certificate!);
                chainLength = chain.ChainElements.Count;
                return valid;
            },
        });
        var leaf = new X509Certificate2(ssl.RemoteCertificate!);
        Assert.Contains(expectedSan, leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single().EnumerateDnsNames());
        Assert.Equal(SslProtocols.Tls13, ssl.SslProtocol);
        Assert.Equal(3, chainLength); // leaf, intermediate, root
    }

    [Fact]
    public async Task Handshake_Alpn_NegotiatesHttp2AndHttp11()
    {
        await using (var h2 = await _gatehouse.HandshakeAsync("app.test", SslApplicationProtocol.Http2))
        {
            Assert.Equal(SslApplicationProtocol.Http2, h2.NegotiatedApplicationProtocol);
        }

        await using var h1 = await _gatehouse.HandshakeAsync("app.test", SslApplicationProtocol.Http11);
        Assert.Equal(SslApplicationProtocol.Http11, h1.NegotiatedApplicationProtocol);
    }

    [Theory]
    [InlineData("unknown.test")]
    [InlineData("a.b.apps.test")] // wildcards cover one level only
    [InlineData("apps.test")]
    public async Task Handshake_NameNoSiteServes_FailsWithUnrecognizedNameAlert(string serverName)
    {
        var received = await RawHandshakeAsync(_gatehouse.HttpsPort, serverName);
        Assert.Equal(new byte[] { 21, 3, 3, 0, 2, 2, 112 }, received); // fatal alert unrecognized_name(112), nothing else
    }

    [Fact]
    public async Task Handshake_NoServerName_FailsWithUnrecognizedNameAlert()
    {
        Assert.Equal(new byte[] { 21, 3, 3, 0, 2, 2, 112 }, await RawHandshakeAsync(_gatehouse.HttpsPort, null));
    }

    [Fact]
    public async Task Request_ReachesBackend_WithForwardedHeadersSetAndClientCopiesReplaced()
    {
        using var client = _gatehouse.EdgeClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, $"https://app.test:{_gatehouse.HttpsPort}/some/path?q=1");
        request.Headers.Add("X-Forwarded-For", "6.6.6.6");
        request.Headers.Add("X-Forwarded-Host", "evil.test");
        request.Headers.Add("X-Forwarded-Proto", "gopher");
        request.Headers.Add("Forwarded", "for=6.6.6.6");
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var seen = JsonSerializer.Deserialize<Dictionary<string, string>>(await response.Content.ReadAsStringAsync())!;
        Assert.Equal("one", seen["x-backend"]);
        Assert.Equal("/some/path?q=1", seen[":path"]);
        Assert.Equal("127.0.0.1", seen["x-forwarded-for"]);
        Assert.Equal("https", seen["x-forwarded-proto"]);
        Assert.Equal($"app.test:{_gatehouse.HttpsPort}", seen["x-forwarded-host"]);
        Assert.False(seen.ContainsKey("forwarded"));
    }

    [Fact]
    public async Task Request_Http2_IsProxied()
    {
        using var client = _gatehouse.EdgeClient(http2: true);
        using var response = await client.GetAsync($"https://x.apps.test:{_gatehouse.HttpsPort}/");
        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Request_TwoBackends_AreUsedRoundRobin()
    {
        using var client = _gatehouse.EdgeClient();
        var backends = new List<string>();
        for (var i = 0; i < 6; i++)
        {
            var seen = JsonSerializer.Deserialize<Dictionary<string, string>>(await client.GetStringAsync($"https://pair.test:{_gatehouse.HttpsPort}/"))!;
            backends.Add(seen["x-backend"]);
        }

        Assert.Equal(3, backends.Count(b => b == "one"));
        Assert.Equal(3, backends.Count(b => b == "two"));
        Assert.All(backends.Zip(backends.Skip(1)), pair => Assert.NotEqual(pair.First, pair.Second));
    }

    [Theory]
    [InlineData("pair.test", 421)] // another site's host on app.test's connection
    [InlineData("nowhere.test", 421)] // no site at all
    [InlineData("y.apps.test", 200)] // another name of the same site
    [InlineData("APP.TEST:443", 200)]
    public async Task Request_HostMustBelongToTheSiteOfTheNegotiatedCertificate(string host, int expectedStatus)
    {
        await using var ssl = await _gatehouse.HandshakeAsync("app.test", SslApplicationProtocol.Http11);
        await ssl.WriteAsync(System.Text.Encoding.ASCII.GetBytes($"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"));
        using var reader = new StreamReader(ssl);
        var statusLine = await reader.ReadLineAsync();
        Assert.StartsWith($"HTTP/1.1 {expectedStatus} ", statusLine, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Request_BackendDown_Gets502WithAShortPage()
    {
        using var client = _gatehouse.EdgeClient();
        using var response = await client.GetAsync($"https://down.test:{_gatehouse.HttpsPort}/");
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Contains("502 Bad Gateway", body, StringComparison.Ordinal);
        Assert.DoesNotContain(_deadPort.ToString(System.Globalization.CultureInfo.InvariantCulture), body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PlainHttp_AnyPath_Redirects308ToHttps()
    {
        using var client = _gatehouse.PlainClient();
        using var response = await client.GetAsync($"http://app.test:{_gatehouse.HttpPort}/a/b?c=d");
        Assert.Equal(HttpStatusCode.PermanentRedirect, response.StatusCode);
        Assert.Equal(new Uri($"https://app.test:{_gatehouse.HttpsPort}/a/b?c=d"), response.Headers.Location);
    }

    [Fact]
    public async Task PlainHttp_AcmeChallenge_IsAnsweredFromTheStore()
    {
        await _gatehouse.Server.Store.CommitAsync(new StoreTransaction().Put(StoreKeys.Http01Challenge("tok_EN-123"), "tok_EN-123.thumbprint"u8.ToArray()));
        using var client = _gatehouse.PlainClient();
        Assert.Equal("tok_EN-123.thumbprint", await client.GetStringAsync($"http://app.test:{_gatehouse.HttpPort}/.well-known/acme-challenge/tok_EN-123"));
        using var missing = await client.GetAsync($"http://app.test:{_gatehouse.HttpPort}/.well-known/acme-challenge/unknown");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        using var bad = await client.GetAsync($"http://app.test:{_gatehouse.HttpPort}/.well-known/acme-challenge/..%2Fsites");
        Assert.Equal(HttpStatusCode.NotFound, bad.StatusCode);
    }

    [Fact]
    public async Task NotTls_OnTheHttpsPort_IsClosedWithoutAnAnswer()
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, _gatehouse.HttpsPort);
        var stream = tcp.GetStream();
        await stream.WriteAsync("GET / HTTP/1.1\r\nHost: app.test\r\n\r\n"u8.ToArray());
        var buffer = new byte[64];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            Assert.Equal(0, await stream.ReadAsync(buffer, timeout.Token)); // closed, nothing sent
        }
        catch (IOException ex) when (ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
        {
            // aborted, nothing sent
        }
    }

    /// <summary>Sends a real ClientHello and returns every byte the server sends back before closing.</summary>
    internal static async Task<byte[]> RawHandshakeAsync(int port, string? serverName)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, port);
        var recording = new RecordingStream(tcp.GetStream());
        await using var ssl = new SslStream(recording);
        await Assert.ThrowsAnyAsync<Exception>(() => ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = serverName ?? "",
            RemoteCertificateValidationCallback = (_, _, _, _) => false,
        }));
        return recording.Received.ToArray();
    }

    private sealed class RecordingStream(Stream inner) : Stream
    {
        public MemoryStream Received { get; } = new();

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = inner.Read(buffer, offset, count);
            Received.Write(buffer, offset, n);
            return n;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var n = await inner.ReadAsync(buffer, cancellationToken);
            Received.Write(buffer.Span[..n]);
            return n;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.WriteAsync(buffer, offset, count, cancellationToken);
    }
}
