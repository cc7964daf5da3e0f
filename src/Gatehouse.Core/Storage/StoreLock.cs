namespace Gatehouse.Storage;

/// <summary>
/// A lock held by a lease: the lock key exists while its holder's lease lives. The lease is kept alive in the
/// background; when that fails the lock counts as lost and <see cref="Lost"/> is cancelled. Every write made under
/// the lock adds <see cref="Fence"/> so that it only lands while the lock is still held.
/// </summary>
public sealed class StoreLock : IAsyncDisposable
{
    private readonly IStore _store;
    private readonly long _leaseId;
    private readonly CancellationTokenSource _lost = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _keepAlive;

    private StoreLock(IStore store, string key, long leaseId, long revision, TimeSpan ttl, TimeProvider time)
    {
        _store = store;
        _leaseId = leaseId;
        Key = key;
        Revision = revision;
        _keepAlive = KeepAliveAsync(ttl, time);
    }

    /// <summary>The lock's key.</summary>
    public string Key { get; }

    /// <summary>The revision at which the lock was taken.</summary>
    public long Revision { get; }

    /// <summary>Cancelled when the lease could not be kept alive.</summary>
    public CancellationToken Lost => _lost.Token;

    /// <summary>The condition that holds while this lock is held.</summary>
    public StoreCondition Fence => StoreCondition.Unchanged(Key, Revision);

    /// <summary>Takes the lock when nobody holds it; returns null when somebody does.</summary>
    public static async Task<StoreLock?> TryAcquireAsync(IStore store, string key, string holder, TimeSpan ttl, TimeProvider time, CancellationToken cancellationToken)
    {
        var leaseId = await store.GrantLeaseAsync(ttl, cancellationToken);
        try
        {
            var result = await store.CommitAsync(
                new StoreTransaction().If(StoreCondition.Absent(key)).Put(key, System.Text.Encoding.UTF8.GetBytes(holder), leaseId),
                cancellationToken);
            if (result.Succeeded)
            {
                return new StoreLock(store, key, leaseId, result.Revision, ttl, time);
            }
        }
        catch
        {
            await store.RevokeLeaseAsync(leaseId, CancellationToken.None);
            throw;
        }

        await store.RevokeLeaseAsync(leaseId, CancellationToken.None);
        return null;
    }

    /// <summary>Keeps the lease alive every third of its TTL. A keep-alive that fails (the store is briefly away, e.g.
    /// while etcd elects a new leader) is retried until the lease may have run out, counted from the last one that
    /// succeeded; the lock is lost then, or at once when the store says the lease is gone.</summary>
    private async Task KeepAliveAsync(TimeSpan ttl, TimeProvider time)
    {
        var interval = ttl / 3;
        var retry = TimeSpan.FromMilliseconds(Math.Clamp(ttl.TotalMilliseconds / 20, 50, 1000));
        var lastAlive = time.GetTimestamp();
        try
        {
            await Task.Delay(interval, time, _stop.Token);
            while (true)
            {
                bool alive;
                var sent = time.GetTimestamp();
                try
                {
                    alive = await _store.KeepAliveAsync(_leaseId, _stop.Token);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !_stop.IsCancellationRequested)
                {
                    // Give up before the lease could have expired on the store's side: a margin of one retry period
                    // and a tenth of the TTL for clocks and the time the last keep-alive took to arrive.
                    if (time.GetElapsedTime(lastAlive) + retry + (ttl / 10) >= ttl)
                    {
                        break;
                    }

                    await Task.Delay(retry, time, _stop.Token);
                    continue;
                }

                if (!alive)
                {
                    break;
                }

                lastAlive = sent; // the lease restarted no earlier than the request was sent
                await Task.Delay(interval, time, _stop.Token);
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            return;
        }

        await _lost.CancelAsync();
    }

    /// <summary>Releases the lock (revokes the lease).</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _keepAlive;
        try
        {
            await _store.RevokeLeaseAsync(_leaseId, CancellationToken.None);
        }
        catch (Exception)
        {
            // The lease ends by itself when its TTL runs out.
        }

        _lost.Dispose();
        _stop.Dispose();
    }
}
