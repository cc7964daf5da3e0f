using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Gatehouse.IntegrationTests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Gatehouse.IntegrationTests.Tls;

/// <summary>
/// The edge's OpenSSL TLS engine (the default, config <c>edge:tlsEngine</c>) under real clients: curl over HTTP/1.1
/// and HTTP/2 with bodies larger than any buffer on the way, many concurrent HTTP/2 streams on one connection (reads
/// and writes at once), openssl s_client's ALPN offers, garbage after a valid ClientHello; and the .NET engine when
/// configured. Resumption, refused suites and testssl's scan run against the default engine in <see cref="TlsPolicyTests"/>.
/// </summary>
public sealed class TlsEngineTests : IAsyncLifetime
{
    private WebApplication _backend = null!;
    private string _backendUrl = null!;
    private GatehouseInstance _gatehouse = null!;

    public async Task InitializeAsync()
    {
        var port = Ports.Free();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        _backend = builder.Build();
        _backend.MapGet("/", () => "engine");
        _backend.MapGet("/bytes/{count:int}", async (int count, HttpResponse response) =>
        {
            response.ContentType = "application/octet-stream";
            var chunk = Pattern(64 * 1024);
            for (var sent = 0; sent < count; sent += chunk.Length)
            {
                await response.Body.WriteAsync(chunk.AsMemory(0, Math.Min(chunk.Length, count - sent)));
            }
        });
        _backend.MapPost("/sha256", async (HttpRequest request) =>
        {
            using var body = new MemoryStream();
            await request.Body.CopyToAsync(body);
            return $"{body.Length} {Convert.ToHexStringLower(SHA256.HashData(body.ToArray()))}";
        });
        await _backend.StartAsync();
        _backendUrl = $"http://127.0.0.1:{port}";
        _gatehouse = await GatehouseInstance.StartAsync($$"""

              - hosts: [engine.test]
                backends: [{{_backendUrl}}]
            """);
        await _gatehouse.WaitUntilServedAsync(["engine.test"]);
    }

    public async Task DisposeAsync()
    {
        await _gatehouse.DisposeAsync();
        await _backend.DisposeAsync();
    }

    [Fact]
    public void Start_DefaultEngine_IsOpenSslAndLogsItsVersion()
    {
        Assert.Contains(_gatehouse.Logs, line => line.Contains("The edge terminates TLS with OpenSSL 3.", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("--http1.1", "1.1")]
    [InlineData("--http2", "2")]
    public async Task Curl_LargeUploadAndDownload_ArriveWhole(string flag, string expectedVersion)
    {
        var upload = Path.Combine(_gatehouse.Directory, $"upload{flag}.bin");
        var data = RandomNumberGenerator.GetBytes(3 * 1024 * 1024 + 17);
        await File.WriteAllBytesAsync(upload, data);
        var posted = await CurlAsync(flag, "--data-binary", $"@{upload}", "-H", "Content-Type: application/octet-stream", Url("/sha256"));
        Assert.Equal($"{data.Length} {Convert.ToHexStringLower(SHA256.HashData(data))}", posted);

        var download = Path.Combine(_gatehouse.Directory, $"download{flag}.bin");
        var fetched = await CurlAsync(flag, "-o", download, "-w", "%{http_version} %{size_download}", Url("/bytes/5000011"));
        Assert.Equal($"{expectedVersion} 5000011", fetched);
        var received = await File.ReadAllBytesAsync(download);
        Assert.True(received.AsSpan().SequenceEqual(Expected(5_000_011)), "the downloaded bytes differ from what the backend sent");
    }

    [Fact]
    public async Task Http2_ManyConcurrentStreamsOnOneConnection_AllArriveWhole()
    {
        using var client = _gatehouse.EdgeClient(http2: true);
        var expected = Expected(300_007);
        var responses = await Task.WhenAll(Enumerable.Range(0, 64).Select(async _ =>
        {
            using var response = await client.GetAsync(Url("/bytes/300007"));
            return (response.Version, Body: await response.Content.ReadAsByteArrayAsync());
        }));
        Assert.All(responses, r =>
        {
            Assert.Equal(HttpVersion.Version20, r.Version);
            Assert.True(r.Body.AsSpan().SequenceEqual(expected), "a response's bytes differ from what the backend sent");
        });
    }

    [Theory]
    [InlineData("h2", "ALPN protocol: h2")]
    [InlineData("http/1.1", "ALPN protocol: http/1.1")]
    [InlineData("http/1.0", "ALPN protocol: http/1.0")]
    [InlineData("spdy/3,http/1.1,h2", "ALPN protocol: h2")] // the server's preference, not the client's order
    [InlineData("foo", "no application protocol")] // RFC 7301 §3.2: the fatal alert, as nginx sends it
    public async Task SClient_AlpnOffer_GetsTheExpectedProtocolOrAlert(string offer, string expected)
    {
        var output = await SClientAsync(_gatehouse, "-alpn", offer);
        Assert.Contains(expected, output, StringComparison.Ordinal);
    }

    /// <summary>Valid ClientHellos followed by random bytes (seeded, so a failure replays): each connection ends with
    /// nothing but TLS records sent back, and the edge keeps serving.</summary>
    [Fact]
    public async Task Garbage_AfterAValidClientHello_EndsThatConnectionOnly()
    {
        var hello = await ClientHelloBytes.CaptureAsync("engine.test");
        for (var seed = 0; seed < 40; seed++)
        {
            var random = new Random(seed);
            var garbage = new byte[random.Next(1, 3000)];
            random.NextBytes(garbage);
            if (seed % 4 == 0)
            {
                // A well-formed record header (application data, TLS 1.2) around random content.
                garbage[0] = 23;
                garbage[1] = 3;
                garbage[2] = 3;
            }

            using var tcp = new TcpClient();
            await tcp.ConnectAsync(IPAddress.Loopback, _gatehouse.HttpsPort);
            var stream = tcp.GetStream();
            await stream.WriteAsync(hello);
            await stream.WriteAsync(garbage);
            var received = await ReadUntilClosedAsync(stream, TimeSpan.FromSeconds(15));
            Assert.True(received.Length > 0, $"seed {seed}: nothing came back");
            Assert.True(AllTlsRecords(received), $"seed {seed}: the server sent something other than TLS records");
        }

        using var client = _gatehouse.EdgeClient();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(Url("/bytes/10"))).StatusCode);
    }

    [Fact]
    public async Task DotNetEngine_WhenConfigured_ServesTheSameSite()
    {
        await using var dotnet = await GatehouseInstance.StartAsync($$"""

              - hosts: [engine.test]
                backends: [{{_backendUrl}}]
            """, edgeYaml: "tlsEngine: dotnet");
        await dotnet.WaitUntilServedAsync(["engine.test"]);
        Assert.Contains(dotnet.Logs, line => line.Contains("The edge terminates TLS with .NET's SslStream", StringComparison.Ordinal));

        // SslStream goes on without ALPN where the OpenSSL engine sends the alert: proof that the other engine served.
        var output = await SClientAsync(dotnet, "-alpn", "foo");
        Assert.Contains("No ALPN negotiated", output, StringComparison.Ordinal);
        Assert.Contains("Verify return code: 0 (ok)", output, StringComparison.Ordinal);
    }

    private string Url(string path) => $"https://engine.test:{_gatehouse.HttpsPort}{path}";

    private async Task<string> CurlAsync(params string[] args)
    {
        var root = Path.Combine(_gatehouse.DataDirectory, "local-ca-root.pem");
        var result = await Tools.RunAsync("curl",
            ["-sS", "--fail", "--max-time", "60", "--cacert", root, "--resolve", $"engine.test:{_gatehouse.HttpsPort}:127.0.0.1", .. args],
            _gatehouse.Directory, timeout: TimeSpan.FromSeconds(90));
        Assert.True(result.ExitCode == 0, $"curl failed ({result.ExitCode}): {result.StandardError}");
        return result.StandardOutput.Trim();
    }

    private static async Task<string> SClientAsync(GatehouseInstance gatehouse, params string[] more)
    {
        var root = Path.Combine(gatehouse.DataDirectory, "local-ca-root.pem");
        string[] args = ["s_client", "-connect", $"127.0.0.1:{gatehouse.HttpsPort}", "-servername", "engine.test", "-CAfile", root, .. more];
        var result = await Tools.RunAsync("sh", ["-c", "echo Q | openssl \"$@\" 2>&1", "sh", .. args], gatehouse.Directory);
        return result.StandardOutput;
    }

    private static async Task<byte[]> ReadUntilClosedAsync(NetworkStream stream, TimeSpan timeout)
    {
        using var received = new MemoryStream();
        using var cancel = new CancellationTokenSource(timeout);
        var buffer = new byte[16 * 1024];
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer, cancel.Token)) > 0)
            {
                received.Write(buffer, 0, read);
            }
        }
        catch (IOException ex) when (ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
        {
            // closed with a reset after what was sent
        }

        return received.ToArray();
    }

    /// <summary>Whether <paramref name="bytes"/> is a sequence of whole TLS records (handshake, alert, change cipher spec
    /// or application data, version 3.x, at most 2^14 + 256 bytes each).</summary>
    private static bool AllTlsRecords(ReadOnlySpan<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            if (bytes.Length < 5 || bytes[0] is < 20 or > 23 || bytes[1] != 3)
            {
                return false;
            }

            var length = (bytes[3] << 8) | bytes[4];
            if (length > 16 * 1024 + 256 || bytes.Length < 5 + length)
            {
                return false;
            }

            bytes = bytes[(5 + length)..];
        }

        return true;
    }

    private static byte[] Pattern(int length)
    {
        var bytes = new byte[length];
        for (var i = 0; i < length; i++)
        {
            bytes[i] = (byte)(i * 31 + (i >> 8));
        }

        return bytes;
    }

    /// <summary>What the backend sends for <c>/bytes/count</c>: the 64 KiB pattern repeated.</summary>
    private static byte[] Expected(int count)
    {
        var chunk = Pattern(64 * 1024);
        var bytes = new byte[count];
        for (var offset = 0; offset < count; offset += chunk.Length)
        {
            chunk.AsSpan(0, Math.Min(chunk.Length, count - offset)).CopyTo(bytes.AsSpan(offset));
        }

        return bytes;
    }
}
