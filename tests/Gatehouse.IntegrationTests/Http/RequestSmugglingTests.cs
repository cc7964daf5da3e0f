using System.Net.Security;
using System.Text;
using System.Text.RegularExpressions;
using Gatehouse.IntegrationTests.Infrastructure;

namespace Gatehouse.IntegrationTests.Http;

/// <summary>
/// Request smuggling through the HTTPS edge, with raw bytes over TLS and a backend that records exactly what reached
/// it. Whatever a request's framing tricks, the edge must not let the backend read a request the edge did not
/// answer, nor a request hidden in another's body: every request the backend sees is one the edge framed itself
/// (Content-Length or chunked, never both), and a request named <c>/smuggled</c> never arrives.
/// </summary>
public sealed partial class RequestSmugglingTests : IAsyncLifetime
{
    private const string Smuggled = "GET /smuggled HTTP/1.1\r\nHost: smuggle.test\r\n\r\n";

    private RecordingHttpBackend _backend = null!;
    private RecordingHttpBackend _otherBackend = null!;
    private GatehouseInstance _gatehouse = null!;

    public async Task InitializeAsync()
    {
        _backend = RecordingHttpBackend.Start();
        _otherBackend = RecordingHttpBackend.Start();
        _gatehouse = await GatehouseInstance.StartAsync($$"""

              - hosts: [smuggle.test]
                backends: [{{_backend.Url}}]
              - hosts: [other.test]
                backends: [{{_otherBackend.Url}}]
            """);
        await _gatehouse.WaitUntilServedAsync(["smuggle.test"]);
        _backend.Requests.Clear();
    }

    public async Task DisposeAsync()
    {
        await _gatehouse.DisposeAsync();
        await _backend.DisposeAsync();
        await _otherBackend.DisposeAsync();
    }

    public static TheoryData<string, string> Attacks => new()
    {
        // RFC 9112 §6.1: both framings; the body (by Content-Length) hides a second request after the last chunk.
        { "CL.TE", $"POST /first HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: {5 + Smuggled.Length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{Smuggled}" },
        // Both framings the other way round: a chunk that, read as chunked, holds the second request.
        { "TE.CL", $"POST /first HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{Smuggled.Length:x}\r\n{Smuggled}\r\n0\r\n\r\n" },
        // Two different lengths (RFC 9112 §6.3 item 5: unrecoverable).
        { "CL.CL", $"POST /first HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 0\r\nContent-Length: {Smuggled.Length}\r\n\r\n{Smuggled}" },
        // Transfer codings a front end might not recognize as chunked while a back end would, or the reverse.
        { "TE xchunked", $"POST /first HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: xchunked\r\nContent-Length: {Smuggled.Length}\r\n\r\n{Smuggled}" },
        { "TE chunked, identity", $"POST /first HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n{Smuggled.Length:x}\r\n{Smuggled}\r\n0\r\n\r\n" },
        { "TE twice", $"POST /first HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{Smuggled}" },
        { "TE space before colon", $"POST /first HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding : chunked\r\nContent-Length: {5 + Smuggled.Length}\r\n\r\n0\r\n\r\n{Smuggled}" },
        { "TE obs-fold", $"POST /first HTTP/1.1\r\nHost: smuggle.test\r\nX: y\r\n Transfer-Encoding: chunked\r\nContent-Length: {5 + Smuggled.Length}\r\n\r\n0\r\n\r\n{Smuggled}" },
        { "TE tab value", $"POST /first HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding:\tchunked\r\nContent-Length: {5 + Smuggled.Length}\r\n\r\n0\r\n\r\n{Smuggled}" },
        // Bare LF line ends, which some parsers accept and others do not (RFC 9112 §2.2).
        { "bare LF", $"POST /first HTTP/1.1\nHost: smuggle.test\nContent-Length: {Smuggled.Length}\n\n{Smuggled}" },
        { "bare LF in chunk", $"POST /first HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\n\r\n0\n\r\n{Smuggled}" },
        // Chunk sizes that overflow or are not hex.
        { "chunk size overflow", $"POST /first HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000{Smuggled.Length:x}\r\n{Smuggled}\r\n0\r\n\r\n" },
        { "chunk size 0x", $"POST /first HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\n\r\n0x{Smuggled.Length:x}\r\n{Smuggled}\r\n0\r\n\r\n" },
        { "negative length", $"POST /first HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: -1\r\n\r\n{Smuggled}" },
        { "length with plus", $"POST /first HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: +{Smuggled.Length}\r\n\r\n{Smuggled}" },
        // Control characters in a header value.
        { "NUL in header", $"POST /first HTTP/1.1\r\nHost: smuggle.test\r\nX-A: a\0b\r\nContent-Length: {Smuggled.Length}\r\n\r\n{Smuggled}" },
        { "CR in header", $"GET /first HTTP/1.1\r\nHost: smuggle.test\r\nX-A: a\rGET /smuggled HTTP/1.1\r\n\r\n" },
    };

    [Theory]
    [MemberData(nameof(Attacks))]
    public async Task Send_FramingAttack_NothingIsSmuggledToTheBackend(string attack, string request)
    {
        var (statuses, _) = await ExchangeAsync(request);

        var received = _backend.Requests.ToList();
        Assert.DoesNotContain(received, r => r.RequestLine.Contains("/smuggled", StringComparison.Ordinal));
        Assert.DoesNotContain(received, r => r.RequestLine.StartsWith("UNFRAMED", StringComparison.Ordinal));
        Assert.All(received, r => Assert.False(
            r.Headers.Any(h => h.StartsWith("Transfer-Encoding:", StringComparison.OrdinalIgnoreCase)) && r.Headers.Any(h => h.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase)),
            $"{attack}: the backend got both Content-Length and Transfer-Encoding"));
        // Every answer from the backend is one the client got, and the edge answered no more than the client framed.
        Assert.True(statuses.Count(s => s == 200) == received.Count, $"{attack}: client saw [{string.Join(", ", statuses)}], backend got {received.Count} request(s)");
        Assert.True(statuses.Count <= 1, $"{attack}: more than one response on the connection: [{string.Join(", ", statuses)}]");
    }

    /// <summary>RFC 9112 §6.1: with both Content-Length and Transfer-Encoding, chunked wins and the connection closes
    /// after the response, so whatever Content-Length claimed beyond the last chunk is never read as a request.</summary>
    [Theory]
    [InlineData("CL.TE")]
    [InlineData("TE.CL")]
    public async Task Send_LengthAndChunked_ChunkedWinsThenClosed(string attack)
    {
        var (statuses, closed) = await ExchangeAsync(Attack(attack));
        Assert.True(closed, $"{attack}: the connection stayed open");
        Assert.True(statuses is [] or [400] or [200], $"{attack}: [{string.Join(", ", statuses)}]");
        Assert.All(_backend.Requests, r => Assert.Equal("POST /first HTTP/1.1", r.RequestLine));
    }

    /// <summary>Framing that cannot be read one way only is refused: 400, connection closed, backend untouched.</summary>
    [Theory]
    [InlineData("CL.CL")]
    [InlineData("TE xchunked")]
    [InlineData("TE chunked, identity")]
    [InlineData("TE space before colon")]
    [InlineData("TE obs-fold")]
    [InlineData("bare LF")]
    [InlineData("bare LF in chunk")]
    [InlineData("chunk size overflow")]
    [InlineData("chunk size 0x")]
    [InlineData("negative length")]
    [InlineData("NUL in header")]
    [InlineData("CR in header")]
    public async Task Send_UnreadableFraming_400AndClosed(string attack)
    {
        var (statuses, closed) = await ExchangeAsync(Attack(attack));
        Assert.Equal([400], statuses);
        Assert.True(closed, $"{attack}: the connection stayed open after a 400");
        Assert.DoesNotContain(_backend.Requests, r => r.Body.Contains("smuggled", StringComparison.Ordinal) || r.RequestLine.Contains("smuggled", StringComparison.Ordinal));
    }

    /// <summary>Kestrel reads <c>Content-Length: +N</c> as N (RFC 9110 §8.6 allows digits only) and exposes only the
    /// parsed value, so the edge cannot refuse it; what it forwards is framed by its own reading, so the backend and
    /// the edge agree. Pinned here so that a change in Kestrel shows.</summary>
    [Fact]
    public async Task Send_LengthWithPlusSign_ReadAsDigitsAndForwardedWithPlainLength()
    {
        var (statuses, _) = await ExchangeAsync(Attack("length with plus"));
        Assert.True(statuses is [200] or [400], $"[{string.Join(", ", statuses)}]");
        Assert.All(_backend.Requests, r =>
        {
            Assert.Equal("POST /first HTTP/1.1", r.RequestLine);
            Assert.Contains($"Content-Length: {Smuggled.Length}", r.Headers);
        });
    }

    private static string Attack(string name) => (string)Attacks.Single(row => (string)row[0] == name)[1];

    /// <summary>A request line in absolute form names the target; a Host header for another site cannot steer it.</summary>
    [Fact]
    public async Task Send_AbsoluteFormForAnotherSite_NeverReachesThatSite()
    {
        var (statuses, _) = await ExchangeAsync("GET https://other.test/steal HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
        Assert.DoesNotContain(200, statuses);
        Assert.Empty(_otherBackend.Requests);
        Assert.Empty(_backend.Requests);
    }

    [Fact]
    public async Task Send_TwoHostHeaders_400()
    {
        var (statuses, _) = await ExchangeAsync("GET /first HTTP/1.1\r\nHost: smuggle.test\r\nHost: other.test\r\n\r\n");
        Assert.Equal([400], statuses);
        Assert.Empty(_otherBackend.Requests);
    }

    /// <summary>h2c smuggling: an Upgrade to cleartext HTTP/2 passed to the backend would open a channel the edge no
    /// longer parses.</summary>
    [Fact]
    public async Task Send_H2cUpgrade_NotPassedToTheBackend()
    {
        var (statuses, _) = await ExchangeAsync("GET /first HTTP/1.1\r\nHost: smuggle.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n");
        Assert.DoesNotContain(101, statuses);
        Assert.All(_backend.Requests, r => Assert.DoesNotContain(r.Headers, h => h.StartsWith("Upgrade:", StringComparison.OrdinalIgnoreCase) || h.StartsWith("HTTP2-Settings:", StringComparison.OrdinalIgnoreCase)));
    }

    /// <summary>A well-formed pipelined pair still works: the tests above fail for the right reason.</summary>
    [Fact]
    public async Task Send_TwoPipelinedRequests_BothAnsweredInOrder()
    {
        var (statuses, _) = await ExchangeAsync("POST /first HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 3\r\n\r\nabcGET /second HTTP/1.1\r\nHost: smuggle.test\r\nConnection: close\r\n\r\n");
        Assert.Equal([200, 200], statuses);
        Assert.Equal(["POST /first HTTP/1.1", "GET /second HTTP/1.1"], _backend.Requests.Select(r => r.RequestLine));
        Assert.Equal("abc", _backend.Requests.First().Body);
    }

    /// <summary>Sends <paramref name="request"/> over TLS (HTTP/1.1) and reads until the edge closes or stays quiet
    /// for 3 s; returns the status codes of the responses and whether the edge closed.</summary>
    private async Task<(List<int> Statuses, bool Closed)> ExchangeAsync(string request)
    {
        await using var tls = await _gatehouse.HandshakeAsync("smuggle.test", SslApplicationProtocol.Http11);
        await tls.WriteAsync(Encoding.Latin1.GetBytes(request));
        await tls.FlushAsync();
        var received = new MemoryStream();
        var buffer = new byte[16384];
        var closed = false;
        while (true)
        {
            using var quiet = new CancellationTokenSource(TimeSpan.FromSeconds(3));
            try
            {
                var read = await tls.ReadAsync(buffer, quiet.Token);
                if (read == 0)
                {
                    closed = true;
                    break;
                }

                received.Write(buffer, 0, read);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            catch (IOException)
            {
                closed = true;
                break;
            }
        }

        var text = Encoding.Latin1.GetString(received.ToArray());
        var statuses = StatusLine().Matches(text).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        return (statuses, closed);
    }

    [GeneratedRegex(@"(?m)^HTTP/1\.1 (\d{3}) ")]
    private static partial Regex StatusLine();
}
