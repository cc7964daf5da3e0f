using System.Diagnostics;
using System.Globalization;
using Gatehouse.IntegrationTests.Infrastructure;
using Gatehouse.Storage;
using Gatehouse.Storage.Etcd;
using Gatehouse.Tests.Storage;

namespace Gatehouse.IntegrationTests.Storage;

/// <summary>
/// The store contract, unchanged, against a real 3-member etcd cluster (each test under a fresh key prefix), plus
/// what only etcd has: compaction, paged lists, shared clusters, members that die.
/// </summary>
[Collection(EtcdCollection.Name)]
public sealed class EtcdStoreContractTests(EtcdFixture etcd) : StoreContractTests, IAsyncLifetime
{
    private const string Keys = "/gatehouse/v1/test/";

    protected override Task<IStore> CreateStoreAsync() => Task.FromResult<IStore>(etcd.OpenStore(EtcdFixture.NewPrefix()));

    Task IAsyncLifetime.InitializeAsync() => InitializeAsync();

    async Task IAsyncLifetime.DisposeAsync()
    {
        await DisposeAsync();
        await etcd.RevokeAllLeasesAsync();
    }

    [Fact]
    public async Task Watch_FromCompactedRevision_ThrowsCompactedWithItsRevision_AndResumesFromAList()
    {
        var first = await PutAsync(Keys + "c/a", "1");
        await PutAsync(Keys + "c/a", "2");
        var compactAt = await PutAsync(Keys + "c/b", "3");
        await etcd.Cluster.EtcdctlAsync(["compact", compactAt.Revision.ToString(CultureInfo.InvariantCulture)]);

        var compacted = await Assert.ThrowsAsync<StoreCompactedException>(() => CollectAsync(Keys + "c/", first.Revision, 1));
        Assert.Equal(compactAt.Revision, compacted.CompactedRevision);

        // What StoreMirror does next: list, then watch from the list's revision.
        var range = await Store.ListAsync(Keys + "c/");
        Assert.Equal(["2", "3"], range.Entries.Select(e => Text(e)));
        var after = await PutAsync(Keys + "c/c", "4");
        var events = await CollectAsync(Keys + "c/", range.Revision, 1);
        Assert.Equal((StoreEventKind.Put, Keys + "c/c", after.Revision), (events[0].Kind, events[0].Entry.Key, events[0].Revision));
    }

    [Fact]
    public async Task List_ThousandsOfKeys_ReadsEveryPageAtOneRevision()
    {
        const int Count = 3 * EtcdStore.ListPageSize;
        for (var batch = 0; batch < Count / StoreLimits.MaxOperations + 1; batch++)
        {
            var transaction = new StoreTransaction();
            for (var i = batch * StoreLimits.MaxOperations; i < Math.Min(Count, (batch + 1) * StoreLimits.MaxOperations); i++)
            {
                transaction.Put(Keys + "many/k" + i.ToString("D5", CultureInfo.InvariantCulture), Bytes("v"));
            }

            await Store.CommitAsync(transaction);
        }

        // Keys that sort last are written while the list runs: it must show exactly those committed at or before
        // its revision, whichever page they land on.
        var written = new List<(string Key, long Revision)>();
        using var stop = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            for (var i = 0; i < 200 && !stop.IsCancellationRequested; i++)
            {
                var key = Keys + "many/z" + i.ToString("D3", CultureInfo.InvariantCulture);
                written.Add((key, (await PutAsync(key, "late")).Revision));
            }
        });
        var range = await Store.ListAsync(Keys + "many/");
        await stop.CancelAsync();
        await writer;

        var expectedLate = written.Where(w => w.Revision <= range.Revision).Select(w => w.Key);
        Assert.Equal(Count, range.Entries.Count(e => Text(e) == "v"));
        Assert.Equal(expectedLate, range.Entries.Where(e => Text(e) == "late").Select(e => e.Key));
        Assert.All(range.Entries, e => Assert.True(e.ModRevision <= range.Revision));
        Assert.Equal(range.Entries.Select(e => e.Key).Order(StringComparer.Ordinal), range.Entries.Select(e => e.Key));
    }

    [Fact]
    public async Task KeyPrefix_TwoStoresOnOneCluster_SeeOnlyTheirOwnKeys()
    {
        var prefix = EtcdFixture.NewPrefix();
        await using var other = etcd.OpenStore(prefix);
        var start = await PutAsync(Keys + "shared", "mine");
        await other.CommitAsync(new StoreTransaction().Put(Keys + "shared", Bytes("theirs")).Put(Keys + "only-theirs", Bytes("x")));
        await PutAsync(Keys + "only-mine", "y");

        Assert.Equal("mine", Text(await Store.GetAsync(Keys + "shared")));
        Assert.Equal("theirs", Text(await other.GetAsync(Keys + "shared")));
        Assert.Equal([Keys + "only-mine", Keys + "shared"], (await Store.ListAsync(Keys)).Entries.Select(e => e.Key));
        Assert.Equal([Keys + "only-theirs", Keys + "shared"], (await other.ListAsync(Keys)).Entries.Select(e => e.Key));
        var events = await CollectAsync(Keys, start.Revision, 1);
        Assert.Equal(Keys + "only-mine", events[0].Entry.Key);

        // In etcd the key is the prefix followed by the store key.
        var raw = await etcd.Cluster.EtcdctlAsync(["get", prefix + Keys + "shared", "--print-value-only"]);
        Assert.Equal("theirs", raw.StandardOutput.Trim());
    }

    [Fact]
    public async Task MemberKilled_ReadsWritesWatchesAndLeasesGoOnThroughTheOthers()
    {
        // The store talks to the leader first, so killing it takes away the store's member and forces an election.
        var leader = await etcd.Cluster.LeaderIndexAsync();
        var endpoints = etcd.Cluster.Endpoints;
        await using var store = etcd.OpenStore(EtcdFixture.NewPrefix(), endpoints: [endpoints[leader], .. endpoints.Where((_, i) => i != leader)]);
        try
        {
            var start = await store.CommitAsync(new StoreTransaction().Put(Keys + "f/0", Bytes("0")));
            var lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(30));
            using var watchTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var watching = CollectUntilAsync(store, Keys + "f/", start.Revision, Keys + "f/5", watchTimeout.Token);
            await store.CommitAsync(new StoreTransaction().Put(Keys + "f/1", Bytes("1")));

            etcd.Cluster.KillMember(leader);

            for (var i = 2; i <= 5; i++)
            {
                await PutAcrossFailoverAsync(store, Keys + "f/" + i.ToString(CultureInfo.InvariantCulture), i.ToString(CultureInfo.InvariantCulture));
            }

            Assert.Equal("5", Text(await store.GetAsync(Keys + "f/5")));
            Assert.Equal(6, (await store.ListAsync(Keys + "f/")).Entries.Count);
            Assert.True(await store.KeepAliveAsync(lease));

            // Each revision once, in order; a put whose first attempt hit the dying member may show twice (two
            // revisions), which is the caller's retry, not the watch repeating itself.
            var events = await watching;
            Assert.Equal(["1", "2", "3", "4", "5"], events.Select(e => Text(e.Entry)).Distinct());
            Assert.Equal(events.Select(e => e.Revision).Distinct().Order(), events.Select(e => e.Revision));
        }
        finally
        {
            await etcd.RestoreAsync();
        }
    }

    [Fact]
    public async Task AllMembersStopped_CallsFailWithinTheTimeout_AndWorkAgainOnceTheyAreBack()
    {
        var timeout = TimeSpan.FromSeconds(2);
        await using var store = etcd.OpenStore(EtcdFixture.NewPrefix(), timeout);
        var put = await store.CommitAsync(new StoreTransaction().Put(Keys + "down/a", Bytes("before")));
        using var watchTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var watching = CollectFromAsync(store, Keys + "down/", put.Revision, 1, watchTimeout.Token);
        try
        {
            await etcd.Cluster.StopAllAsync();

            // Functional deadlines far above the 2 s timeout: they tell a hang from an answer, not speed.
            var read = Assert.ThrowsAsync<StoreUnavailableException>(() => store.GetAsync(Keys + "down/a").AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
            var commit = Assert.ThrowsAsync<StoreUnavailableException>(() => store.CommitAsync(new StoreTransaction().Put(Keys + "down/b", Bytes("x"))).AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
            var lease = Assert.ThrowsAsync<StoreUnavailableException>(() => store.GrantLeaseAsync(TimeSpan.FromSeconds(10)).AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
            var watch = Assert.ThrowsAsync<StoreUnavailableException>(() => watching.WaitAsync(TimeSpan.FromSeconds(30)));
            await Task.WhenAll(read, commit, lease, watch);
            Assert.Contains(etcd.Cluster.Endpoints[0].GetLeftPart(UriPartial.Authority), (await read).Message, StringComparison.Ordinal);
        }
        finally
        {
            await etcd.RestoreAsync();
        }

        // The same store object works again: no reconnect by the caller.
        var deadline = Stopwatch.StartNew();
        StoreEntry? entry = null;
        while (entry is null)
        {
            try
            {
                entry = await store.GetAsync(Keys + "down/a");
            }
            catch (StoreUnavailableException) when (deadline.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(100);
            }
        }

        Assert.Equal("before", Text(entry));
        var after = await store.CommitAsync(new StoreTransaction().Put(Keys + "down/b", Bytes("after")));
        var events = await CollectFromAsync(store, Keys + "down/", put.Revision, 1, CancellationToken.None);
        Assert.Equal((Keys + "down/b", after.Revision), (events[0].Entry.Key, events[0].Revision));
    }

    [Fact]
    public async Task Dispose_EndsAnOpenWatchQuietly()
    {
        var store = etcd.OpenStore(EtcdFixture.NewPrefix());
        var start = await store.CommitAsync(new StoreTransaction().Put(Keys + "d/a", Bytes("1")));
        var watching = CollectFromAsync(store, Keys + "d/", start.Revision, 1, CancellationToken.None);
        await Task.Delay(200);
        await store.DisposeAsync();
        Assert.Empty(await watching.WaitAsync(TimeSpan.FromSeconds(30)));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => store.GetAsync(Keys + "d/a").AsTask());
    }

    /// <summary>An idempotent put that tries again when the member it went to died with the put in flight (its
    /// fate unknown, so the store says unavailable rather than guess).</summary>
    private static async Task PutAcrossFailoverAsync(IStore store, string key, string value)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                Assert.True((await store.CommitAsync(new StoreTransaction().Put(key, Bytes(value)))).Succeeded);
                return;
            }
            catch (StoreUnavailableException) when (attempt < 3)
            {
            }
        }
    }

    private static async Task<List<StoreEvent>> CollectUntilAsync(IStore store, string prefix, long afterRevision, string lastKey, CancellationToken cancellationToken)
    {
        var events = new List<StoreEvent>();
        await foreach (var change in store.WatchAsync(prefix, afterRevision, cancellationToken))
        {
            events.Add(change);
            if (change.Entry.Key == lastKey)
            {
                break;
            }
        }

        return events;
    }

    private static async Task<List<StoreEvent>> CollectFromAsync(IStore store, string prefix, long afterRevision, int count, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        var events = new List<StoreEvent>();
        await foreach (var change in store.WatchAsync(prefix, afterRevision, timeout.Token))
        {
            events.Add(change);
            if (events.Count == count)
            {
                break;
            }
        }

        return events;
    }
}
