using System.Diagnostics;
using Gatehouse.Certificates;
using Gatehouse.Storage;

/// <summary>A certificate record with a new serial, as the bench's watch received it: <c>Ticks</c> is the Stopwatch
/// timestamp taken when the watch yielded the change, <c>Utc</c> the wall clock at that moment (to line up with
/// Gatehouse's log).</summary>
internal sealed record RecordArrival(long Ticks, DateTimeOffset Utc, string Serial, long Revision);

/// <summary>
/// The bench's own watch of the certificate records (Gatehouse.Core's EtcdStore on the same endpoints and prefix as
/// the instances, records decoded with CoreJson): the serial each name's record holds now, and the moment a record
/// with a new serial lands in etcd. That moment is the bench's t0; the watch delivers about 1 ms after etcd applied
/// the write (the instances' own watches have the same path).
/// </summary>
internal sealed class CertificateWatch : IAsyncDisposable
{
    private readonly Dictionary<string, string?> _serials = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private (string Host, string? OldSerial, TaskCompletionSource<RecordArrival> Arrived)? _expected;
    private Exception? _failure;
    private Task _loop = Task.CompletedTask;

    public static async Task<CertificateWatch> StartAsync(IStore store)
    {
        var watch = new CertificateWatch();
        var range = await store.ListAsync(StoreKeys.CertificatesPrefix);
        foreach (var entry in range.Entries)
        {
            watch.Apply(CoreJson.Deserialize<CertificateRecord>(entry), 0, default, 0);
        }

        watch._loop = watch.RunAsync(store, range.Revision);
        return watch;
    }

    /// <summary>The serial of the record that names <paramref name="host"/>, null when it has none (yet).</summary>
    public string? Serial(string host)
    {
        lock (_gate)
        {
            return _serials.GetValueOrDefault(host);
        }
    }

    /// <summary>Completes when a record naming <paramref name="host"/> arrives with a serial other than
    /// <paramref name="oldSerial"/>. One expectation at a time; call it before asking for the change.</summary>
    public Task<RecordArrival> Expect(string host, string? oldSerial)
    {
        lock (_gate)
        {
            if (_failure is not null)
            {
                return Task.FromException<RecordArrival>(_failure);
            }

            var arrived = new TaskCompletionSource<RecordArrival>(TaskCreationOptions.RunContinuationsAsynchronously);
            _expected = (host, oldSerial, arrived);
            return arrived.Task;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }

    private async Task RunAsync(IStore store, long revision)
    {
        try
        {
            await foreach (var change in store.WatchAsync(StoreKeys.CertificatesPrefix, revision, _stop.Token))
            {
                var ticks = Stopwatch.GetTimestamp();
                var utc = DateTimeOffset.UtcNow;
                if (change.Kind == StoreEventKind.Put)
                {
                    Apply(CoreJson.Deserialize<CertificateRecord>(change.Entry), ticks, utc, change.Revision);
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            lock (_gate)
            {
                _failure = ex;
                _expected?.Arrived.TrySetException(ex);
            }
        }
    }

    private void Apply(CertificateRecord record, long ticks, DateTimeOffset utc, long revision)
    {
        lock (_gate)
        {
            foreach (var name in record.Names)
            {
                _serials[name] = record.Serial;
            }

            if (_expected is var (host, oldSerial, arrived) && record.Serial is { } serial && serial != oldSerial && record.Names.Contains(host, StringComparer.Ordinal))
            {
                arrived.TrySetResult(new RecordArrival(ticks, utc, serial, revision));
                _expected = null;
            }
        }
    }
}
