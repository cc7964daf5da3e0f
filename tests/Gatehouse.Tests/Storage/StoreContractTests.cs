using System.Text;
using Gatehouse.Storage;

namespace Gatehouse.Tests.Storage;

/// <summary>
/// The store contract (see <see cref="IStore"/>), written once and run against every store. A new store passes
/// by deriving from this class and creating itself in <see cref="CreateStoreAsync"/>, unchanged.
/// </summary>
public abstract class StoreContractTests : IAsyncLifetime
{
    private const string Prefix = "/gatehouse/v1/test/";
    private IStore _store = null!;

    protected IStore Store => _store;

    /// <summary>Creates an empty store for one test.</summary>
    protected abstract Task<IStore> CreateStoreAsync();

    public async Task InitializeAsync() => _store = await CreateStoreAsync();

    public async Task DisposeAsync() => await _store.DisposeAsync();

    protected static byte[] Bytes(string s) => Encoding.UTF8.GetBytes(s);

    protected static string Text(StoreEntry? e) => e is null ? "<null>" : Encoding.UTF8.GetString(e.Value.Span);

    protected async Task<CommitResult> PutAsync(string key, string value, long leaseId = 0) =>
        await Store.CommitAsync(new StoreTransaction().Put(key, Bytes(value), leaseId));

    [Fact]
    public async Task Get_MissingKey_ReturnsNull()
    {
        Assert.Null(await Store.GetAsync(Prefix + "missing"));
    }

    [Fact]
    public async Task Put_NewKey_SetsRevisionsAndVersion()
    {
        var result = await PutAsync(Prefix + "a", "1");
        Assert.True(result.Succeeded);
        var entry = await Store.GetAsync(Prefix + "a");
        Assert.NotNull(entry);
        Assert.Equal("1", Text(entry));
        Assert.Equal(result.Revision, entry.ModRevision);
        Assert.Equal(result.Revision, entry.CreateRevision);
        Assert.Equal(1, entry.Version);

        var second = await PutAsync(Prefix + "a", "2");
        var updated = await Store.GetAsync(Prefix + "a");
        Assert.True(second.Revision > result.Revision);
        Assert.Equal(second.Revision, updated!.ModRevision);
        Assert.Equal(result.Revision, updated.CreateRevision);
        Assert.Equal(2, updated.Version);
    }

    [Fact]
    public async Task Commit_EachChange_AdvancesRevisionByOne()
    {
        var first = await PutAsync(Prefix + "a", "1");
        var second = await Store.CommitAsync(new StoreTransaction().Put(Prefix + "b", Bytes("1")).Put(Prefix + "c", Bytes("1")));
        Assert.Equal(first.Revision + 1, second.Revision);
        Assert.Equal(second.Revision, (await Store.GetAsync(Prefix + "b"))!.ModRevision);
        Assert.Equal(second.Revision, (await Store.GetAsync(Prefix + "c"))!.ModRevision);
    }

    [Fact]
    public async Task Commit_ConditionAbsentOnExistingKey_FailsAndChangesNothing()
    {
        var put = await PutAsync(Prefix + "a", "1");
        var result = await Store.CommitAsync(new StoreTransaction()
            .If(StoreCondition.Absent(Prefix + "a"))
            .Put(Prefix + "a", Bytes("2"))
            .Put(Prefix + "b", Bytes("2")));
        Assert.False(result.Succeeded);
        Assert.Equal(put.Revision, result.Revision);
        Assert.Equal("1", Text(await Store.GetAsync(Prefix + "a")));
        Assert.Null(await Store.GetAsync(Prefix + "b"));
    }

    [Fact]
    public async Task Commit_CompareAndSwap_OnlyTheFirstOfTwoWritersWins()
    {
        var put = await PutAsync(Prefix + "a", "0");
        var first = await Store.CommitAsync(new StoreTransaction().If(StoreCondition.Unchanged(Prefix + "a", put.Revision)).Put(Prefix + "a", Bytes("first")));
        var second = await Store.CommitAsync(new StoreTransaction().If(StoreCondition.Unchanged(Prefix + "a", put.Revision)).Put(Prefix + "a", Bytes("second")));
        Assert.True(first.Succeeded);
        Assert.False(second.Succeeded);
        Assert.Equal("first", Text(await Store.GetAsync(Prefix + "a")));
    }

    [Fact]
    public async Task Commit_ConcurrentIncrements_NoUpdateIsLost()
    {
        await PutAsync(Prefix + "counter", "0");
        async Task IncrementAsync()
        {
            for (var i = 0; i < 10; i++)
            {
                while (true)
                {
                    var entry = (await Store.GetAsync(Prefix + "counter"))!;
                    var next = int.Parse(Text(entry), System.Globalization.CultureInfo.InvariantCulture) + 1;
                    var result = await Store.CommitAsync(new StoreTransaction()
                        .If(StoreCondition.Unchanged(Prefix + "counter", entry.ModRevision))
                        .Put(Prefix + "counter", Bytes(next.ToString(System.Globalization.CultureInfo.InvariantCulture))));
                    if (result.Succeeded)
                    {
                        break;
                    }
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(IncrementAsync)));
        Assert.Equal("40", Text(await Store.GetAsync(Prefix + "counter")));
    }

    [Fact]
    public async Task Delete_ExistingAndMissingKeys_RemovesOnlyWhatExists()
    {
        await PutAsync(Prefix + "a", "1");
        var before = await PutAsync(Prefix + "b", "1");
        var result = await Store.CommitAsync(new StoreTransaction().Delete(Prefix + "a").Delete(Prefix + "nope"));
        Assert.True(result.Succeeded);
        Assert.Equal(before.Revision + 1, result.Revision);
        Assert.Null(await Store.GetAsync(Prefix + "a"));
        Assert.NotNull(await Store.GetAsync(Prefix + "b"));

        var noop = await Store.CommitAsync(new StoreTransaction().Delete(Prefix + "nope"));
        Assert.True(noop.Succeeded);
        Assert.Equal(result.Revision, noop.Revision);
    }

    [Fact]
    public async Task List_Prefix_ReturnsOnlyKeysUnderItInKeyOrder()
    {
        await PutAsync(Prefix + "dir/b", "b");
        await PutAsync(Prefix + "dir/a", "a");
        await PutAsync(Prefix + "dir0", "sibling");
        await PutAsync(Prefix + "di", "shorter");
        var last = await PutAsync(Prefix + "dir/c/d", "nested");
        var range = await Store.ListAsync(Prefix + "dir/");
        Assert.Equal([Prefix + "dir/a", Prefix + "dir/b", Prefix + "dir/c/d"], range.Entries.Select(e => e.Key));
        Assert.Equal(last.Revision, range.Revision);
    }

    [Fact]
    public async Task Watch_FromRevision_YieldsLaterChangesInOrderOnce()
    {
        var start = await PutAsync(Prefix + "w/a", "0");
        await PutAsync(Prefix + "w/a", "1");
        await PutAsync(Prefix + "other", "x");
        await Store.CommitAsync(new StoreTransaction().Put(Prefix + "w/b", Bytes("2")).Delete(Prefix + "w/a"));

        var events = await CollectAsync(Prefix + "w/", start.Revision, 3);
        Assert.Equal([(StoreEventKind.Put, Prefix + "w/a"), (StoreEventKind.Put, Prefix + "w/b"), (StoreEventKind.Delete, Prefix + "w/a")], events.Select(e => (e.Kind, e.Entry.Key)));
        Assert.Equal("1", Text(events[0].Entry));
        Assert.Equal(events[1].Revision, events[2].Revision); // one transaction, one revision
        Assert.True(events[0].Revision < events[1].Revision);
    }

    [Fact]
    public async Task Watch_Resumed_FromLastSeenRevision_MissesNothingAndRepeatsNothing()
    {
        var start = await PutAsync(Prefix + "r/0", "0");
        for (var i = 1; i <= 5; i++)
        {
            await PutAsync(Prefix + "r/" + i, i.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        var firstPart = await CollectAsync(Prefix + "r/", start.Revision, 2);
        var resumed = await CollectAsync(Prefix + "r/", firstPart[^1].Revision, 3);
        Assert.Equal(["1", "2", "3", "4", "5"], firstPart.Concat(resumed).Select(e => Text(e.Entry)));
    }

    [Fact]
    public async Task Watch_Live_SeesWritesMadeAfterItStarted()
    {
        var start = await PutAsync(Prefix + "live/seed", "0");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var watching = CollectAsync(Prefix + "live/", start.Revision, 2, cts.Token);
        await Task.Delay(100);
        await PutAsync(Prefix + "live/a", "a");
        await PutAsync(Prefix + "live/b", "b");
        var events = await watching;
        Assert.Equal(["a", "b"], events.Select(e => Text(e.Entry)));
    }

    [Fact]
    public async Task Lease_Expired_DeletesItsKeysAndWatchSeesTheDelete()
    {
        var lease = await Store.GrantLeaseAsync(TimeSpan.FromMilliseconds(500));
        var put = await PutAsync(Prefix + "lease/a", "held", lease);
        Assert.Equal(lease, (await Store.GetAsync(Prefix + "lease/a"))!.LeaseId);

        var events = await CollectAsync(Prefix + "lease/", put.Revision, 1);
        Assert.Equal(StoreEventKind.Delete, events[0].Kind);
        Assert.Null(await Store.GetAsync(Prefix + "lease/a"));
        Assert.False(await Store.KeepAliveAsync(lease));
    }

    [Fact]
    public async Task Lease_KeptAlive_OutlivesItsTtl()
    {
        // Kept alive every 300 ms for 6 s: well past the 3 s TTL, with a wide margin for a busy machine.
        var lease = await Store.GrantLeaseAsync(TimeSpan.FromSeconds(3));
        await PutAsync(Prefix + "alive", "x", lease);
        for (var i = 0; i < 20; i++)
        {
            await Task.Delay(300);
            Assert.True(await Store.KeepAliveAsync(lease));
        }

        Assert.NotNull(await Store.GetAsync(Prefix + "alive"));
    }

    [Fact]
    public async Task Lease_Revoked_DeletesItsKeysAtOnce()
    {
        var lease = await Store.GrantLeaseAsync(TimeSpan.FromMinutes(1));
        await PutAsync(Prefix + "revoke/a", "x", lease);
        await PutAsync(Prefix + "revoke/b", "y");
        await Store.RevokeLeaseAsync(lease);
        Assert.Null(await Store.GetAsync(Prefix + "revoke/a"));
        Assert.NotNull(await Store.GetAsync(Prefix + "revoke/b"));
        await Store.RevokeLeaseAsync(lease); // unknown now: no error
    }

    [Fact]
    public async Task Put_WithUnknownLease_ThrowsAndWritesNothing()
    {
        var lease = await Store.GrantLeaseAsync(TimeSpan.FromMinutes(1));
        await Store.RevokeLeaseAsync(lease);
        await Assert.ThrowsAsync<StoreLeaseNotFoundException>(async () =>
            await Store.CommitAsync(new StoreTransaction().Put(Prefix + "x", Bytes("1")).Put(Prefix + "y", Bytes("1"), lease)));
        Assert.Null(await Store.GetAsync(Prefix + "x"));
    }

    [Fact]
    public async Task Lock_SecondAcquirerWaitsUntilTheFirstReleases()
    {
        var first = await StoreLock.TryAcquireAsync(Store, StoreKeys.Lock("test"), "one", TimeSpan.FromSeconds(5), TimeProvider.System, default);
        Assert.NotNull(first);
        Assert.Null(await StoreLock.TryAcquireAsync(Store, StoreKeys.Lock("test"), "two", TimeSpan.FromSeconds(5), TimeProvider.System, default));

        // A write fenced by the first lock lands while it is held, and not after it is released.
        Assert.True((await Store.CommitAsync(new StoreTransaction().If(first.Fence).Put(Prefix + "fenced", Bytes("1")))).Succeeded);
        var fence = first.Fence;
        await first.DisposeAsync();
        Assert.False((await Store.CommitAsync(new StoreTransaction().If(fence).Put(Prefix + "fenced", Bytes("2")))).Succeeded);

        await using var second = await StoreLock.TryAcquireAsync(Store, StoreKeys.Lock("test"), "two", TimeSpan.FromSeconds(5), TimeProvider.System, default);
        Assert.NotNull(second);
    }

    [Fact]
    public async Task Transaction_InvalidInput_IsRefusedBeforeTheStore()
    {
        Assert.Throws<ArgumentException>(() => new StoreTransaction().Put("no-slash", Bytes("x")));
        Assert.Throws<ArgumentException>(() => new StoreTransaction().Put(Prefix + "big", new byte[StoreLimits.MaxValueBytes + 1]));
        var transaction = new StoreTransaction();
        for (var i = 0; i < StoreLimits.MaxOperations; i++)
        {
            transaction.Delete(Prefix + i);
        }

        Assert.Throws<ArgumentException>(() => transaction.Delete(Prefix + "one-too-many"));
        await Task.CompletedTask;
    }

    protected async Task<List<StoreEvent>> CollectAsync(string prefix, long afterRevision, int count, CancellationToken cancellationToken = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        var events = new List<StoreEvent>();
        await foreach (var change in Store.WatchAsync(prefix, afterRevision, timeout.Token))
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
