using Gatehouse.Storage;
using Gatehouse.Storage.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gatehouse.Tests.Storage;

/// <summary>Leader election over the store: one leader at a time, and leadership moves when the leader goes.</summary>
public sealed class StoreElectionTests : IAsyncLifetime, IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);
    private readonly TempDirectory _directory = new();
    private SqliteStore _store = null!;

    public Task InitializeAsync()
    {
        _store = SqliteStore.Open(Path.Combine(_directory.Path, "store.db"));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _store.DisposeAsync();

    public void Dispose() => _directory.Dispose();

    private StoreElection Candidate(string name) =>
        new(_store, "test", name, TimeSpan.FromSeconds(2), TimeProvider.System, NullLogger.Instance) { PollInterval = TimeSpan.FromMilliseconds(50) };

    [Fact]
    public async Task ThreeCandidates_ExactlyOneLeads_AndAnotherTakesOverWhenItStops()
    {
        var candidates = new[] { Candidate("a"), Candidate("b"), Candidate("c") };
        var changes = new List<(string, bool)>();
        foreach (var (candidate, name) in candidates.Zip(["a", "b", "c"]))
        {
            candidate.Subscribe(leading =>
            {
                lock (changes)
                {
                    changes.Add((name, leading));
                }
            });
        }

        var stops = candidates.Select(_ => new CancellationTokenSource()).ToArray();
        var runs = candidates.Select((c, i) => c.RunAsync(stops[i].Token)).ToArray();
        try
        {
            Assert.True(await EventuallyAsync(() => candidates.Count(c => c.IsLeader) == 1));
            var first = Array.FindIndex(candidates, c => c.IsLeader);
            var holder = await _store.GetAsync(StoreKeys.Lock("leader/test"));
            Assert.Equal(new[] { "a", "b", "c" }[first], System.Text.Encoding.UTF8.GetString(holder!.Value.Span));
            Assert.NotNull(candidates[first].Fence);
            Assert.All(candidates.Where((_, i) => i != first), c => Assert.Null(c.Fence));

            // The leader stops (it revokes its lease on the way out): one of the others is elected, never two at once.
            await stops[first].CancelAsync();
            await runs[first];
            Assert.False(candidates[first].IsLeader);
            Assert.True(await EventuallyAsync(() => candidates.Count(c => c.IsLeader) == 1));
            Assert.NotEqual(first, Array.FindIndex(candidates, c => c.IsLeader));
            lock (changes)
            {
                Assert.Equal(3, changes.Count); // elected, stepped down, the next elected
            }
        }
        finally
        {
            foreach (var stop in stops)
            {
                await stop.CancelAsync();
            }

            await Task.WhenAll(runs);
        }
    }

    [Fact]
    public async Task LeaderWhoseLeaseEnds_StepsDown_AndIsNotALeaderForItsOldFence()
    {
        // The lease is revoked behind the leader's back (what a partition looks like once the TTL has passed): the
        // leader learns it on its next keep-alive and steps down; its old fence no longer holds.
        var leader = Candidate("a");
        using var stop = new CancellationTokenSource();
        var run = leader.RunAsync(stop.Token);
        try
        {
            Assert.True(await EventuallyAsync(() => leader.IsLeader));
            var fence = leader.Fence!.Value;
            var key = await _store.GetAsync(StoreKeys.Lock("leader/test"));
            await _store.RevokeLeaseAsync(key!.LeaseId);
            Assert.True(await EventuallyAsync(() => !leader.IsLeader || leader.Fence != fence));
            var fenced = await _store.CommitAsync(new StoreTransaction().If(fence).Put("/gatehouse/v1/test/fenced", new byte[] { 1 }));
            Assert.False(fenced.Succeeded);

            // With nobody else campaigning, it is elected again, under a new fence.
            Assert.True(await EventuallyAsync(() => leader.IsLeader && leader.Fence != fence));
        }
        finally
        {
            await stop.CancelAsync();
            await run;
        }
    }

    private static async Task<bool> EventuallyAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                return false;
            }

            await Task.Delay(20);
        }

        return true;
    }
}
