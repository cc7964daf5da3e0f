using Gatehouse.Dns;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gatehouse.Tests.Dns;

public sealed class TxtRecordWatcherTests
{
    private const string Name = "_acme-challenge.a.acme.test.";

    private static TxtRecordWatcher Watcher(params FakeDnsServer[] servers) =>
        new(new DnsVisibilityOptions { Nameservers = servers.Select(s => s.Address).ToList(), QueryTimeout = TimeSpan.FromMilliseconds(500) },
            TimeProvider.System, NullLogger.Instance);

    private static byte[] Answer(FakeDnsRequest request, params string[] values) => FakeDnsServer.Answer(request, m => new DnsMessage
    {
        Id = m.Id,
        IsResponse = true,
        Authoritative = true,
        Questions = m.Questions,
        Answers = values.Select(v => new DnsRecord(Name, DnsRecordType.TXT, DnsClass.IN, 60, TxtData.FromValue(v))).ToList(),
    });

    [Fact]
    public async Task WaitUntilVisibleAsync_ValueAppearsOnTheThirdQuery_ReturnsAfterShortBackoff()
    {
        var queries = 0;
        await using var server = new FakeDnsServer(r => [Interlocked.Increment(ref queries) >= 3 ? Answer(r, "other", "value") : Answer(r, "other")]);

        await Watcher(server).WaitUntilVisibleAsync(Name, "value", TimeSpan.FromSeconds(10), CancellationToken.None);

        Assert.Equal(3, queries);
        Assert.All(server.Requests, r => Assert.False(r.Message.RecursionDesired));
        Assert.All(server.Requests, r => Assert.Equal(new DnsQuestion(Name, DnsRecordType.TXT), Assert.Single(r.Message.Questions)));
    }

    [Fact]
    public async Task WaitUntilVisibleAsync_NeverVisible_TimesOutWithoutBusyLooping()
    {
        await using var server = new FakeDnsServer(r => [Answer(r, "stale")]);

        var error = await Assert.ThrowsAsync<DnsException>(() =>
            Watcher(server).WaitUntilVisibleAsync(Name, "value", TimeSpan.FromSeconds(2), CancellationToken.None));

        // 50, 100, 200, 400, 800 ms, then 1 s: about six queries in two seconds.
        Assert.InRange(server.Requests.Count, 4, 8);
        Assert.Contains(Name, error.Message);
        Assert.Contains("within 2 s", error.Message);
        Assert.Contains($"{server.Address} answered 1 other TXT value(s)", error.Message);
        Assert.True(error.Transient);
    }

    [Fact]
    public async Task WaitUntilVisibleAsync_TwoServers_WaitsForBoth()
    {
        var laggingQueries = 0;
        await using var primary = new FakeDnsServer(r => [Answer(r, "value")]);
        await using var secondary = new FakeDnsServer(r => [Interlocked.Increment(ref laggingQueries) >= 4 ? Answer(r, "value") : Answer(r)]);

        await Watcher(primary, secondary).WaitUntilVisibleAsync(Name, "value", TimeSpan.FromSeconds(10), CancellationToken.None);

        Assert.Single(primary.Requests); // once seen there, not asked again
        // It kept asking until the lagging server showed the value. Not exactly 4: a query is repeated when, e.g., its answer misses the
        // 500 ms query timeout (then it counts as not visible); 5 was seen in 2 of 6 runs of this class.
        Assert.InRange(laggingQueries, 4, 8);
    }

    [Fact]
    public async Task WaitUntilVisibleAsync_ServerError_IsReportedAtTheTimeout()
    {
        await using var server = new FakeDnsServer(r => [FakeDnsServer.Answer(r, m => new DnsMessage { Id = m.Id, IsResponse = true, Questions = m.Questions, ResponseCode = DnsResponseCode.Refused })]);

        // Long enough for the first answer to arrive on a busy machine (the query timeout is 500 ms); a shorter wait
        // can end before any answer and then reports silence instead of the server's error.
        var error = await Assert.ThrowsAsync<DnsException>(() =>
            Watcher(server).WaitUntilVisibleAsync(Name, "value", TimeSpan.FromSeconds(3), CancellationToken.None));

        Assert.Contains("answered REFUSED", error.Message);
    }

    [Fact]
    public async Task WaitUntilVisibleAsync_Cancelled_ThrowsOperationCanceled()
    {
        await using var server = new FakeDnsServer(r => [Answer(r)]);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            Watcher(server).WaitUntilVisibleAsync(Name, "value", TimeSpan.FromSeconds(10), cancel.Token));
    }
}
