using System.Diagnostics;

namespace Gatehouse.Storage.Sqlite;

/// <summary>
/// The recent tail of a store's history, read once for all of its watchers: after a change, one query brings the tail
/// up to date and every watcher picks its prefix's events from memory, instead of each watcher querying the history
/// table. The tail is complete for the revisions in (<c>start</c>, <c>end</c>]; a watcher behind <c>start</c> (it began
/// from an old revision, or fell behind a burst longer than the tail) reads the history table itself, which also
/// reports compaction.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The semaphore never allocates a wait handle (AvailableWaitHandle is not used), so there is nothing to dispose; disposing it would race with watchers ending at shutdown.")]
internal sealed class SqliteEventLog
{
    /// <summary>Events kept; a burst larger than this sends slow watchers to the history table.</summary>
    private const int Capacity = 4096;

    /// <summary>A refresh without a change signal (another process may have written the file) at most this often.</summary>
    private static readonly TimeSpan PollRefreshInterval = TimeSpan.FromMilliseconds(500);

    private readonly Func<long, HistoryBatch> _readAfter;
    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _refresh = new(1, 1);
    private readonly List<StoreEvent> _events = [];
    private long _start = -1;
    private long _end = -1;
    private long _generation;
    private long _refreshedGeneration = -1;
    private long _refreshedAt;

    /// <param name="readAfter">Reads the history after a revision (all keys, whole revisions) and the revision up to
    /// which the result is complete; after -1, only the store's current revision.</param>
    public SqliteEventLog(Func<long, HistoryBatch> readAfter) => _readAfter = readAfter;

    /// <summary>Records that the store changed; the next refresh reads the history table.</summary>
    public void Changed() => Interlocked.Increment(ref _generation);

    /// <summary>Brings the tail up to date when the store changed since the last refresh, or when
    /// <paramref name="polled"/> and the last refresh is older than the poll interval.</summary>
    public async ValueTask RefreshAsync(bool polled, CancellationToken cancellationToken)
    {
        if (!NeedsRefresh(polled))
        {
            return;
        }

        await _refresh.WaitAsync(cancellationToken);
        try
        {
            if (!NeedsRefresh(polled))
            {
                return; // another watcher refreshed while this one waited
            }

            // Taken before reading: a change that lands after the read bumps the generation again.
            var generation = Volatile.Read(ref _generation);
            long end;
            lock (_lock)
            {
                end = _end;
            }

            while (true)
            {
                var batch = _readAfter(end);
                Append(batch);
                if (!batch.Partial)
                {
                    break;
                }

                end = batch.CompleteTo;
            }

            Volatile.Write(ref _refreshedGeneration, generation);
            Volatile.Write(ref _refreshedAt, Stopwatch.GetTimestamp());
        }
        finally
        {
            _refresh.Release();
        }
    }

    /// <summary>The events under <paramref name="prefix"/> after <paramref name="after"/>, when the tail covers them;
    /// <paramref name="upTo"/> is the revision the answer is complete to.</summary>
    public bool TryRead(string prefix, long after, List<StoreEvent> events, out long upTo)
    {
        lock (_lock)
        {
            upTo = _end;
            if (_start < 0 || after < _start)
            {
                return false;
            }

            // The first event after 'after' (events are in revision order).
            int low = 0, high = _events.Count;
            while (low < high)
            {
                var middle = (low + high) >>> 1;
                if (_events[middle].Revision <= after)
                {
                    low = middle + 1;
                }
                else
                {
                    high = middle;
                }
            }

            for (var i = low; i < _events.Count; i++)
            {
                if (_events[i].Entry.Key.StartsWith(prefix, StringComparison.Ordinal))
                {
                    events.Add(_events[i]);
                }
            }

            return true;
        }
    }

    private bool NeedsRefresh(bool polled) =>
        Volatile.Read(ref _refreshedGeneration) < Volatile.Read(ref _generation)
        || (polled && Stopwatch.GetElapsedTime(Volatile.Read(ref _refreshedAt)) >= PollRefreshInterval);

    private void Append(HistoryBatch batch)
    {
        lock (_lock)
        {
            if (_start < 0 || batch.CompactedPast)
            {
                // The first read (the current revision only), or the history was compacted past the tail: an empty
                // tail at the store's revision; watchers from before it read the history table.
                _events.Clear();
                _start = _end = batch.CompleteTo;
                return;
            }

            _events.AddRange(batch.Events);
            _end = Math.Max(_end, batch.CompleteTo);
            if (_events.Count > Capacity)
            {
                // Drop whole revisions from the front.
                var cut = _events.Count - Capacity;
                var lastDropped = _events[cut - 1].Revision;
                while (cut < _events.Count && _events[cut].Revision == lastDropped)
                {
                    cut++;
                }

                _events.RemoveRange(0, cut);
                _start = lastDropped;
            }
        }
    }
}

/// <summary>History read after a revision.</summary>
/// <param name="Events">The events, whole revisions only, in revision order.</param>
/// <param name="CompleteTo">The revision up to which <paramref name="Events"/> is complete.</param>
/// <param name="Partial">Whether more history follows (the read hit its batch size).</param>
/// <param name="CompactedPast">Whether the history no longer reaches back to the revision asked for.</param>
internal readonly record struct HistoryBatch(List<StoreEvent> Events, long CompleteTo, bool Partial, bool CompactedPast);
