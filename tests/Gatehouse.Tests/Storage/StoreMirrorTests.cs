using System.Text;
using Gatehouse.Storage;
using Gatehouse.Storage.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gatehouse.Tests.Storage;

/// <summary>The mirror over a real SQLite store: deltas are always relative to what the subscriber last received.</summary>
public sealed class StoreMirrorTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public async Task Deltas_AreRelativeToTheSubscribersLastSnapshot_ALateSubscribersFirstSnapshotHasNone()
    {
        await using var store = SqliteStore.Open(Path.Combine(_directory.Path, "store.db"));
        var mirror = new StoreMirror<string>(store, "/t/", entry => Encoding.UTF8.GetString(entry.Value.Span), NullLogger.Instance);
        var early = new List<MirrorSnapshot<string>>();
        mirror.Subscribe(snapshot => { lock (early) { early.Add(snapshot); } });
        using var stop = new CancellationTokenSource();
        var running = mirror.RunAsync(stop.Token);
        await mirror.Loaded;

        await store.CommitAsync(new StoreTransaction().Put("/t/a", "1"u8.ToArray()));
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (mirror.Current.Items.Count == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        Assert.Equal(["/t/a"], mirror.Current.ChangedKeys!);
        var late = new List<MirrorSnapshot<string>>();
        mirror.Subscribe(late.Add);
        await stop.CancelAsync();
        await running;

        Assert.Null(early[0].ChangedKeys); // the load
        lock (early)
        {
            Assert.Equal(["/t/a"], early[^1].ChangedKeys!);
        }

        var first = Assert.Single(late);
        Assert.Null(first.ChangedKeys);
        Assert.Equal("1", first.Items["/t/a"].Value);
    }
}
