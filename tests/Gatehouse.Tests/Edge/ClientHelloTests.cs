using System.Buffers;
using System.Net.Security;
using System.Security.Authentication;
using Gatehouse.Edge.Tls;

namespace Gatehouse.Tests.Edge;

public sealed class ClientHelloTests
{
    [Theory]
    [InlineData("example.com", SslProtocols.Tls13)]
    [InlineData("Www.Example.COM", SslProtocols.Tls12)]
    [InlineData("a.b.c.example", SslProtocols.Tls12 | SslProtocols.Tls13)]
    public async Task TryParse_RealClientHello_FindsServerNameAndAlpn(string serverName, SslProtocols protocols)
    {
        var hello = await CaptureClientHelloAsync(serverName, protocols, [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11]);
        Assert.Equal(ClientHelloStatus.Complete, ClientHello.TryParse(hello, out var info));
        Assert.Equal(serverName, info.ServerName);
        Assert.Equal(OfferedProtocols.Http2 | OfferedProtocols.Http11, info.Protocols);
    }

    [Fact]
    public async Task TryParse_AcmeTlsAlpn_IsRecognized()
    {
        var hello = await CaptureClientHelloAsync("example.com", SslProtocols.Tls12 | SslProtocols.Tls13, [new SslApplicationProtocol("acme-tls/1")]);
        Assert.Equal(ClientHelloStatus.Complete, ClientHello.TryParse(hello, out var info));
        Assert.Equal(OfferedProtocols.AcmeTls1, info.Protocols);
    }

    [Fact]
    public async Task TryParse_NoServerName_IsCompleteWithNullName()
    {
        var hello = await CaptureClientHelloAsync(null, SslProtocols.Tls13, null);
        Assert.Equal(ClientHelloStatus.Complete, ClientHello.TryParse(hello, out var info));
        Assert.Null(info.ServerName);
    }

    [Fact]
    public async Task TryParse_EveryPrefix_NeedsMoreData()
    {
        var hello = await CaptureClientHelloAsync("example.com", SslProtocols.Tls13, null);
        for (var length = 0; length < hello.Length; length++)
        {
            Assert.Equal(ClientHelloStatus.NeedMoreData, ClientHello.TryParse(hello.AsSpan(0, length), out _));
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(100)]
    public async Task TryParse_HelloSplitOverRecords_IsReassembled(int fragmentSize)
    {
        var hello = await CaptureClientHelloAsync("split.example", SslProtocols.Tls13, [SslApplicationProtocol.Http11]);
        var fragmented = Fragment(hello, fragmentSize);
        Assert.Equal(ClientHelloStatus.Complete, ClientHello.TryParse(fragmented, out var info));
        Assert.Equal("split.example", info.ServerName);
        Assert.Equal(ClientHelloStatus.NeedMoreData, ClientHello.TryParse(fragmented.AsSpan(0, fragmented.Length - 1), out _));
    }

    [Fact]
    public async Task TryParse_MultiSegmentSequence_MatchesContiguous()
    {
        var hello = await CaptureClientHelloAsync("segments.example", SslProtocols.Tls13, null);
        var sequence = Segments(hello, 7);
        Assert.Equal(ClientHelloStatus.Complete, ClientHello.TryParse(sequence, out var info));
        Assert.Equal("segments.example", info.ServerName);
    }

    [Theory]
    [InlineData(new byte[] { (byte)'G', (byte)'E', (byte)'T', (byte)' ', (byte)'/' })]
    [InlineData(new byte[] { 22, 3, 3, 0, 0 })] // empty record
    [InlineData(new byte[] { 22, 2, 0, 0, 5, 1, 0, 0, 1, 0 })] // SSL 2-era version
    [InlineData(new byte[] { 22, 3, 3, 0x40, 1, 1, 0, 0, 1 })] // record longer than 2^14
    [InlineData(new byte[] { 23, 3, 3, 0, 5, 1, 2, 3, 4, 5 })] // application data first
    [InlineData(new byte[] { 22, 3, 3, 0, 4, 2, 0, 0, 0 })] // ServerHello, not ClientHello
    public void TryParse_NotAClientHello_IsInvalid(byte[] data)
    {
        Assert.Equal(ClientHelloStatus.Invalid, ClientHello.TryParse(data, out _));
    }

    [Fact]
    public async Task TryParse_RandomMutations_NeverThrow()
    {
        // Property: whatever the bytes, the parser returns a status and never throws or reads out of bounds.
        var hello = await CaptureClientHelloAsync("fuzz.example", SslProtocols.Tls13, [SslApplicationProtocol.Http2]);
        var random = new Random(20261122);
        var statuses = new Dictionary<ClientHelloStatus, int>();
        for (var i = 0; i < 20_000; i++)
        {
            var mutated = (byte[])hello.Clone();
            var flips = random.Next(1, 6);
            for (var f = 0; f < flips; f++)
            {
                mutated[random.Next(mutated.Length)] = (byte)random.Next(256);
            }

            var length = random.Next(4) == 0 ? random.Next(mutated.Length) : mutated.Length;
            var status = ClientHello.TryParse(mutated.AsSpan(0, length), out var info);
            statuses[status] = statuses.GetValueOrDefault(status) + 1;
            if (status == ClientHelloStatus.Complete && info.ServerName is { } name)
            {
                Assert.All(name, c => Assert.True(char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_'));
            }
        }

        // The mutations reach all three outcomes, so the property was exercised on every path.
        Assert.Equal(3, statuses.Count);
    }

    [Fact]
    public void TryParse_ReplayedCorpus_NeverThrows()
    {
        var corpus = Path.Combine(AppContext.BaseDirectory, "Edge", "clienthello-corpus");
        var files = Directory.GetFiles(corpus);
        Assert.NotEmpty(files);
        foreach (var file in files)
        {
            _ = ClientHello.TryParse(File.ReadAllBytes(file), out _);
        }
    }

    /// <summary>Lets a real SslStream client write its ClientHello into a buffer.</summary>
    internal static Task<byte[]> CaptureClientHelloAsync(string? serverName, SslProtocols protocols, List<SslApplicationProtocol>? alpn) =>
        Gatehouse.IntegrationTests.Infrastructure.ClientHelloBytes.CaptureAsync(serverName, protocols, alpn);

    private static byte[] Fragment(byte[] hello, int size)
    {
        var body = hello.AsSpan(5);
        var output = new List<byte>();
        for (var offset = 0; offset < body.Length; offset += size)
        {
            var chunk = body.Slice(offset, Math.Min(size, body.Length - offset));
            output.AddRange([22, 3, 1, (byte)(chunk.Length >> 8), (byte)chunk.Length]);
            output.AddRange(chunk.ToArray());
        }

        return [.. output];
    }

    private static ReadOnlySequence<byte> Segments(byte[] data, int size)
    {
        Segment? first = null, last = null;
        for (var offset = 0; offset < data.Length; offset += size)
        {
            var memory = data.AsMemory(offset, Math.Min(size, data.Length - offset));
            if (first is null)
            {
                first = last = new Segment(memory, 0);
            }
            else
            {
                last = last!.Append(memory);
            }
        }

        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
