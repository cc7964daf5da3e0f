using Gatehouse.Storage;
using Gatehouse.Storage.Sqlite;
using Microsoft.Data.Sqlite;

namespace Gatehouse.Tests.Storage;

/// <summary>The store contract against SQLite, plus what only the embedded store has (files, schema, compaction).</summary>
public sealed class SqliteStoreContractTests : StoreContractTests, IDisposable
{
    private readonly TempDirectory _directory = new();

    protected override Task<IStore> CreateStoreAsync() => Task.FromResult<IStore>(SqliteStore.Open(Path.Combine(_directory.Path, "store.db")));

    public void Dispose() => _directory.Dispose();

    [Fact]
    public async Task Reopen_KeepsDataAndRevision()
    {
        var put = await PutAsync("/gatehouse/v1/test/kept", "yes");
        await Store.DisposeAsync();
        await using var reopened = SqliteStore.Open(Path.Combine(_directory.Path, "store.db"));
        Assert.Equal("yes", Text(await reopened.GetAsync("/gatehouse/v1/test/kept")));
        var next = await reopened.CommitAsync(new StoreTransaction().Put("/gatehouse/v1/test/next", Bytes("1")));
        Assert.Equal(put.Revision + 1, next.Revision);
    }

    [Fact]
    public async Task Watch_FromCompactedRevision_ThrowsCompacted()
    {
        var path = Path.Combine(_directory.Path, "compact.db");
        await using var store = SqliteStore.Open(path, historyRevisions: 2);
        var first = await store.CommitAsync(new StoreTransaction().Put("/gatehouse/v1/test/c", Bytes("1")));
        for (var i = 0; i < 5; i++)
        {
            await store.CommitAsync(new StoreTransaction().Put("/gatehouse/v1/test/c", Bytes(i.ToString(System.Globalization.CultureInfo.InvariantCulture))));
        }

        var compactedTo = await store.CompactNowAsync();
        Assert.True(compactedTo > first.Revision);
        var ex = await Assert.ThrowsAsync<StoreCompactedException>(async () =>
        {
            await foreach (var _ in store.WatchAsync("/gatehouse/v1/test/", first.Revision))
            {
            }
        });
        Assert.Equal(compactedTo, ex.CompactedRevision);
    }

    [Fact]
    public async Task Watch_WriteByAnotherProcessOnTheSameFile_IsSeen()
    {
        // A second store on the same file stands for another process (the CLI): its commits do not signal this one.
        var start = await PutAsync("/gatehouse/v1/test/x/seed", "0");
        await using var other = SqliteStore.Open(Path.Combine(_directory.Path, "store.db"));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var watching = CollectAsync("/gatehouse/v1/test/x/", start.Revision, 2, cts.Token);
        await other.CommitAsync(new StoreTransaction().Put("/gatehouse/v1/test/x/a", Bytes("a")));
        await PutAsync("/gatehouse/v1/test/x/b", "b");
        var events = await watching;
        Assert.Equal(["a", "b"], events.Select(e => Text(e.Entry)));
    }

    [Fact]
    public async Task Watch_ManyWatchersThroughABurstLongerThanTheSharedTail_EachSeesItsEventsOnceInOrder()
    {
        // 6,000 revisions (more than the 4,096 events the shared tail keeps) over three prefixes, written while three
        // watchers read: whether a watcher reads from the tail or falls back to the history table, it sees each of its
        // prefix's events once, in order.
        const int Writes = 6000;
        var start = await PutAsync("/gatehouse/v1/test/seed", "0");
        string[] prefixes = ["/gatehouse/v1/test/p0/", "/gatehouse/v1/test/p1/", "/gatehouse/v1/test/p2/"];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var watchers = prefixes.Select(p => Task.Run(() => CollectAsync(p, start.Revision, Writes / 3, cts.Token))).ToArray();
        for (var i = 0; i < Writes; i++)
        {
            await PutAsync(prefixes[i % 3] + (i / 3 % 50).ToString(System.Globalization.CultureInfo.InvariantCulture), i.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        for (var w = 0; w < 3; w++)
        {
            var events = await watchers[w];
            Assert.Equal(Enumerable.Range(0, Writes).Where(i => i % 3 == w).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)), events.Select(e => Text(e.Entry)));
            Assert.True(events.Zip(events.Skip(1)).All(pair => pair.First.Revision < pair.Second.Revision));
        }
    }

    [Fact]
    public async Task Open_SchemaNewerThanThisBuild_IsRefusedWithClearError()
    {
        var path = Path.Combine(_directory.Path, "future.db");
        await (await Task.FromResult(SqliteStore.Open(path))).DisposeAsync();
        using (var connection = new SqliteConnection($"Data Source={path};Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "PRAGMA user_version = 99";
            command.ExecuteNonQuery();
        }

        var ex = Assert.Throws<StoreUnavailableException>(() => SqliteStore.Open(path));
        Assert.Contains("schema version 99", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Open_UsesWriteAheadLog()
    {
        await PutAsync("/gatehouse/v1/test/wal", "1");
        Assert.True(File.Exists(Path.Combine(_directory.Path, "store.db-wal")));
    }

    [Fact]
    public async Task Dispose_AfterConcurrentReadsAndWrites_ClosesEveryConnection()
    {
        // SQLite removes the WAL file when the last connection to the database closes: one left open by the store (a
        // pooled reader, the writer) would keep it.
        var path = Path.Combine(_directory.Path, "closed.db");
        var store = SqliteStore.Open(path);
        await store.CommitAsync(new StoreTransaction().Put("/gatehouse/v1/test/k", Bytes("0")));
        var readers = Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < 50; i++)
            {
                Assert.NotNull(await store.GetAsync("/gatehouse/v1/test/k"));
                await store.ListAsync("/gatehouse/v1/test/");
            }
        })).ToArray();
        for (var i = 0; i < 50; i++)
        {
            await store.CommitAsync(new StoreTransaction().Put("/gatehouse/v1/test/k", Bytes(i.ToString(System.Globalization.CultureInfo.InvariantCulture))));
        }

        await Task.WhenAll(readers);
        Assert.True(File.Exists(path + "-wal"));
        await store.DisposeAsync();

        Assert.False(File.Exists(path + "-wal"));
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await store.GetAsync("/gatehouse/v1/test/k"));
        await using var reopened = SqliteStore.Open(path);
        Assert.Equal("49", Text(await reopened.GetAsync("/gatehouse/v1/test/k")));
    }
}
