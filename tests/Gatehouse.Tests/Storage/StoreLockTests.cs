using Gatehouse.Storage;
using Gatehouse.Storage.Sqlite;

namespace Gatehouse.Tests.Storage;

/// <summary>A lock rides out a store that is briefly away (an etcd leader election) and is lost when its lease may
/// have run out.</summary>
public sealed class StoreLockTests : IAsyncLifetime, IDisposable
{
    private readonly TempDirectory _directory = new();
    private SqliteStore _store = null!;

    public Task InitializeAsync()
    {
        _store = SqliteStore.Open(Path.Combine(_directory.Path, "store.db"));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _store.DisposeAsync();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public async Task KeepAliveFailures_ShorterThanTheTtl_DoNotLoseTheLock()
    {
        // Three keep-alives in a row are refused (retried every 500 ms: well under the 10 s TTL, with seconds to spare
        // for a loaded machine's late timers), then they succeed.
        var flaky = new FlakyKeepAliveStore(_store) { FailNext = 3 };
        await using var held = await StoreLock.TryAcquireAsync(flaky, StoreKeys.Lock("flaky"), "me", TimeSpan.FromSeconds(10), TimeProvider.System, default);
        Assert.NotNull(held);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (flaky.Succeeded == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        Assert.Equal(3, flaky.Failures);
        Assert.True(flaky.Succeeded > 0, "no keep-alive succeeded after the refusals");
        Assert.False(held.Lost.IsCancellationRequested);
        Assert.True((await _store.CommitAsync(new StoreTransaction().If(held.Fence).Put("/gatehouse/v1/test/fenced", new byte[] { 1 }))).Succeeded);
    }

    [Fact]
    public async Task KeepAliveFailures_UntilTheLeaseMayHaveEnded_LoseTheLock()
    {
        var flaky = new FlakyKeepAliveStore(_store) { FailNext = int.MaxValue };
        await using var held = await StoreLock.TryAcquireAsync(flaky, StoreKeys.Lock("flaky"), "me", TimeSpan.FromSeconds(2), TimeProvider.System, default);
        Assert.NotNull(held);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await Task.Delay(Timeout.InfiniteTimeSpan, held.Lost).ContinueWith(_ => { }, TaskScheduler.Default).WaitAsync(timeout.Token);
        Assert.True(held.Lost.IsCancellationRequested);
    }

    /// <summary>The real store, with the next <see cref="FailNext"/> keep-alives refused as "unavailable".</summary>
    private sealed class FlakyKeepAliveStore(IStore inner) : IStore
    {
        private int _calls;
        private int _failures;
        private int _succeeded;

        public int FailNext { get; set; }

        public int Failures => Volatile.Read(ref _failures);

        public int Succeeded => Volatile.Read(ref _succeeded);

        public ValueTask<StoreEntry?> GetAsync(string key, CancellationToken cancellationToken = default) => inner.GetAsync(key, cancellationToken);

        public ValueTask<StoreRange> ListAsync(string prefix, CancellationToken cancellationToken = default) => inner.ListAsync(prefix, cancellationToken);

        public ValueTask<CommitResult> CommitAsync(StoreTransaction transaction, CancellationToken cancellationToken = default) => inner.CommitAsync(transaction, cancellationToken);

        public IAsyncEnumerable<StoreEvent> WatchAsync(string prefix, long afterRevision, CancellationToken cancellationToken = default) => inner.WatchAsync(prefix, afterRevision, cancellationToken);

        public ValueTask<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken cancellationToken = default) => inner.GrantLeaseAsync(ttl, cancellationToken);

        public async ValueTask<bool> KeepAliveAsync(long leaseId, CancellationToken cancellationToken = default)
        {
            if (Interlocked.Increment(ref _calls) <= FailNext)
            {
                Interlocked.Increment(ref _failures);
                throw new StoreUnavailableException("the store is away (test)");
            }

            var alive = await inner.KeepAliveAsync(leaseId, cancellationToken);
            Interlocked.Increment(ref _succeeded);
            return alive;
        }

        public ValueTask RevokeLeaseAsync(long leaseId, CancellationToken cancellationToken = default) => inner.RevokeLeaseAsync(leaseId, cancellationToken);

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
