using System.Net;
using System.Net.Sockets;
using Gatehouse.Dns;

namespace Gatehouse.Tests.Dns;

public sealed class DnsTransportTests
{
    private static readonly DnsTransport Transport = new(TimeSpan.FromMilliseconds(300), attempts: 2);

    private static byte[] Query(string name = "_acme-challenge.a.acme.test.") =>
        new DnsMessage { Id = DnsQueryClient.NewId(), Questions = [new DnsQuestion(name, DnsRecordType.TXT)] }.ToArray();

    private static DnsMessage WithTxt(DnsMessage response, string value) => new()
    {
        Id = response.Id,
        IsResponse = true,
        Authoritative = true,
        Questions = response.Questions,
        Answers = [new DnsRecord(response.Questions[0].Name, DnsRecordType.TXT, DnsClass.IN, 60, TxtData.FromValue(value))],
    };

    [Fact]
    public async Task ExchangeAsync_UdpAnswer_IsReturned()
    {
        await using var server = new FakeDnsServer(r => [FakeDnsServer.Answer(r, m => WithTxt(m, "value"))]);

        var response = await Transport.ExchangeAsync(server.Endpoint, Query(), CancellationToken.None);

        Assert.Equal("value", ((TxtData)Assert.Single(response.Message.Answers).Data).Value);
        Assert.False(Assert.Single(server.Requests).OverTcp);
    }

    [Fact]
    public async Task ExchangeAsync_TruncatedUdpAnswer_IsAskedAgainOverTcp()
    {
        await using var server = new FakeDnsServer(r => r.OverTcp
            ? [FakeDnsServer.Answer(r, m => WithTxt(m, new string('x', 600)))]
            : [FakeDnsServer.Answer(r, m => new DnsMessage { Id = m.Id, IsResponse = true, Truncated = true, Questions = m.Questions })]);

        var response = await Transport.ExchangeAsync(server.Endpoint, Query(), CancellationToken.None);

        Assert.Equal(new string('x', 600), ((TxtData)Assert.Single(response.Message.Answers).Data).Value);
        Assert.Equal([false, true], server.Requests.Select(r => r.OverTcp));
    }

    [Fact]
    public async Task ExchangeAsync_StrayDatagramsFirst_AreDroppedAndTheAnswerTaken()
    {
        await using var server = new FakeDnsServer(r =>
        [
            FakeDnsServer.Answer(r, m => new DnsMessage { Id = (ushort)(m.Id + 1), IsResponse = true, Questions = m.Questions }), // another ID
            FakeDnsServer.Answer(r, m => new DnsMessage { Id = m.Id, IsResponse = true, Questions = [new DnsQuestion("evil.test.", DnsRecordType.TXT)] }),
            [1, 2, 3], // garbage
            FakeDnsServer.Answer(r, m => WithTxt(m, "real")),
        ]);

        var response = await Transport.ExchangeAsync(server.Endpoint, Query(), CancellationToken.None);

        Assert.Equal("real", ((TxtData)Assert.Single(response.Message.Answers).Data).Value);
    }

    [Fact]
    public async Task ExchangeAsync_OnlyGarbage_ThrowsDnsExceptionAfterTheAttempts()
    {
        await using var server = new FakeDnsServer(r => [r.Bytes[..5], [.. r.Bytes, 0xFF]]);

        // Each attempt waits out its timeout (garbage is dropped while waiting); 1 s leaves a loaded machine time to
        // deliver the garbage at all, and an attempt that saw none would still not hide the one that did.
        var transport = new DnsTransport(TimeSpan.FromSeconds(1), attempts: 2);
        var error = await Assert.ThrowsAsync<DnsException>(() => transport.ExchangeAsync(server.Endpoint, Query(), CancellationToken.None));

        Assert.Contains("malformed", error.Message);
        Assert.Contains(server.Address, error.Message);
        Assert.True(error.Transient);
        Assert.Equal(2, server.Requests.Count);
    }

    [Fact]
    public async Task ExchangeAsync_GarbageThenSilence_NamesBothTheGarbageAndTheTimeout()
    {
        var calls = 0;
        await using var server = new FakeDnsServer(r => Interlocked.Increment(ref calls) == 1 ? [r.Bytes[..5]] : []);

        var transport = new DnsTransport(TimeSpan.FromSeconds(1), attempts: 2);
        var error = await Assert.ThrowsAsync<DnsException>(() => transport.ExchangeAsync(server.Endpoint, Query(), CancellationToken.None));

        Assert.Contains("a malformed answer", error.Message);
        Assert.Contains("; the last attempt: no answer within 1 s", error.Message);
        Assert.Equal(2, server.Requests.Count);
    }

    [Fact]
    public async Task ExchangeAsync_Silence_TimesOutAfterTheAttempts()
    {
        await using var server = new FakeDnsServer(_ => []);

        var error = await Assert.ThrowsAsync<DnsException>(() => Transport.ExchangeAsync(server.Endpoint, Query(), CancellationToken.None));

        Assert.Contains("no answer within 0.3 s", error.Message);
        Assert.Equal(2, server.Requests.Count);
    }

    [Fact]
    public async Task ExchangeAsync_NothingListening_ThrowsDnsException()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var closed = (IPEndPoint)probe.LocalEndPoint!;
        probe.Close();

        var error = await Assert.ThrowsAsync<DnsException>(() => Transport.ExchangeAsync(closed, Query(), CancellationToken.None));

        Assert.Contains(closed.ToString(), error.Message);
    }

    [Fact]
    public async Task ExchangeAsync_TcpClosedEarly_ThrowsDnsException()
    {
        await using var server = new FakeDnsServer(r => r.OverTcp
            ? []
            : [FakeDnsServer.Answer(r, m => new DnsMessage { Id = m.Id, IsResponse = true, Truncated = true, Questions = m.Questions })]);

        var error = await Assert.ThrowsAsync<DnsException>(() => Transport.ExchangeAsync(server.Endpoint, Query(), CancellationToken.None));

        Assert.Contains("closed the TCP connection", error.Message);
    }

    [Fact]
    public async Task ExchangeAsync_Cancelled_ThrowsOperationCanceled()
    {
        await using var server = new FakeDnsServer(_ => []);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Transport.ExchangeAsync(server.Endpoint, Query(), cancel.Token));
    }

    [Theory]
    [InlineData("127.0.0.1", "127.0.0.1", 53)]
    [InlineData("127.0.0.1:5353", "127.0.0.1", 5353)]
    [InlineData("[::1]:5353", "::1", 5353)]
    [InlineData("::1", "::1", 53)]
    [InlineData("ns1.example.com", "ns1.example.com", 53)]
    [InlineData("ns1.example.com:8053", "ns1.example.com", 8053)]
    public void DnsServerAddress_Parse_HostAndPort(string text, string host, int port) =>
        Assert.Equal(new DnsServerAddress(host, port), DnsServerAddress.Parse(text));

    [Theory]
    [InlineData("host:0")]
    [InlineData("host:70000")]
    [InlineData("host:abc")]
    [InlineData(":53")]
    public void DnsServerAddress_Parse_Invalid_Throws(string text) => Assert.Throws<ArgumentException>(() => DnsServerAddress.Parse(text));
}
