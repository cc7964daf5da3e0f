using System.Collections.Immutable;
using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Gatehouse.Storage;

/// <summary>
/// Keeps an in-memory copy of everything under one prefix, current with the store: loads the prefix, then applies
/// the watch from the revision of that load. Reloads on compaction, retries with backoff while the store is
/// unavailable (keeping the last copy), and publishes each new snapshot to its subscribers.
/// </summary>
/// <typeparam name="T">The decoded value; entries the decoder rejects are logged and left out.</typeparam>
public sealed class StoreMirror<T>
    where T : class
{
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan DebounceWindow = TimeSpan.FromMilliseconds(20);

    private readonly IStore _store;
    private readonly string _prefix;
    private readonly Func<StoreEntry, T> _decode;
    private readonly ILogger _logger;
    private readonly TaskCompletionSource _loaded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<Action<MirrorSnapshot<T>>> _subscribers = [];
    private volatile MirrorSnapshot<T> _current = new(ImmutableSortedDictionary<string, MirrorItem<T>>.Empty.WithComparers(StringComparer.Ordinal), 0);

    /// <param name="store">The store to mirror.</param>
    /// <param name="prefix">The prefix to mirror.</param>
    /// <param name="decode">Turns an entry into a value; throws <see cref="FormatException"/> for entries it cannot read.</param>
    /// <param name="logger">Where decode and store failures are reported.</param>
    public StoreMirror(IStore store, string prefix, Func<StoreEntry, T> decode, ILogger logger)
    {
        StoreKeys.Validate(prefix);
        _store = store;
        _prefix = prefix;
        _decode = decode;
        _logger = logger;
    }

    /// <summary>The latest snapshot (empty until the first load).</summary>
    public MirrorSnapshot<T> Current => _current;

    /// <summary>Completes once the first load has been applied.</summary>
    public Task Loaded => _loaded.Task;

    /// <summary>Registers a callback invoked (on the mirror's loop, one at a time) with every new snapshot, and once
    /// right away if a snapshot is already loaded. That first call carries no <see cref="MirrorSnapshot{T}.ChangedKeys"/>
    /// (its delta is relative to a snapshot this subscriber never saw), so a subscriber can trust every delta it gets.</summary>
    public void Subscribe(Action<MirrorSnapshot<T>> onChange)
    {
        // Under the publish lock: the new subscriber gets the current snapshot before any newer one.
        lock (_subscribers)
        {
            _subscribers.Add(onChange);
            if (_loaded.Task.IsCompleted)
            {
                onChange(_current with { ChangedKeys = null });
            }
        }
    }

    /// <summary>Runs until cancelled.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var failures = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var range = await _store.ListAsync(_prefix, cancellationToken);
                var builder = ImmutableSortedDictionary.CreateBuilder<string, MirrorItem<T>>(StringComparer.Ordinal);
                foreach (var entry in range.Entries)
                {
                    if (TryDecode(entry) is { } item)
                    {
                        builder[entry.Key] = item;
                    }
                }

                Publish(new MirrorSnapshot<T>(builder.ToImmutable(), range.Revision));
                _loaded.TrySetResult();
                failures = 0;
                await WatchAsync(range.Revision, cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (StoreCompactedException ex)
            {
                StoreMirrorLog.Reloading(_logger, _prefix, ex.CompactedRevision);
            }
            catch (Exception ex)
            {
                // Whatever went wrong, the mirror keeps its last snapshot and tries again: it must never die.
                failures++;
                var delay = TimeSpan.FromMilliseconds(Math.Min(MaxRetryDelay.TotalMilliseconds, 100 * Math.Pow(2, Math.Min(failures, 10))));
                StoreMirrorLog.StoreUnavailable(_logger, _prefix, delay, ex.Message);
                await Task.Delay(delay, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    private async Task WatchAsync(long fromRevision, CancellationToken cancellationToken)
    {
        var snapshot = _current;
        var items = snapshot.Items.ToBuilder();
        var revision = fromRevision;
        await using var changes = _store.WatchAsync(_prefix, fromRevision, cancellationToken).GetAsyncEnumerator(cancellationToken);
        var changed = new HashSet<string>(StringComparer.Ordinal);
        var pending = changes.MoveNextAsync().AsTask();
        var lastPublished = Stopwatch.GetTimestamp();
        while (await pending)
        {
            var change = changes.Current;
            if (change.Revision >= revision)
            {
                revision = change.Revision;
                if (change.Kind == StoreEventKind.Put && TryDecode(change.Entry) is { } item)
                {
                    items[change.Entry.Key] = item;
                }
                else
                {
                    items.Remove(change.Entry.Key);
                }

                changed.Add(change.Entry.Key);
            }

            // A lone change is published at once. Changes already waiting are folded into the same snapshot, and
            // while changes keep arriving, snapshots go out at most once per window: subscribers that rebuild a
            // table per snapshot stay cheap under a burst, and a change is never held back for longer than that.
            pending = changes.MoveNextAsync().AsTask();
            if (!pending.IsCompleted)
            {
                var sinceLast = Stopwatch.GetElapsedTime(lastPublished);
                if (sinceLast < DebounceWindow)
                {
                    await Task.WhenAny(pending, Task.Delay(DebounceWindow - sinceLast, cancellationToken));
                }
            }

            if (pending.IsCompleted && changed.Count < 256)
            {
                continue;
            }

            if (changed.Count > 0)
            {
                Publish(new MirrorSnapshot<T>(items.ToImmutable(), revision, [.. changed]));
                changed.Clear();
                lastPublished = Stopwatch.GetTimestamp();
            }
        }

        if (changed.Count > 0)
        {
            Publish(new MirrorSnapshot<T>(items.ToImmutable(), revision, [.. changed]));
        }
    }

    private MirrorItem<T>? TryDecode(StoreEntry entry)
    {
        try
        {
            return new MirrorItem<T>(_decode(entry), entry.ModRevision);
        }
        catch (Exception ex) when (ex is FormatException or System.Text.Json.JsonException or ArgumentException)
        {
            StoreMirrorLog.Undecodable(_logger, entry.Key, entry.ModRevision, ex.Message);
            return null;
        }
    }

    private void Publish(MirrorSnapshot<T> snapshot)
    {
        lock (_subscribers)
        {
            _current = snapshot;
            foreach (var subscriber in _subscribers)
            {
                try
                {
                    subscriber(snapshot);
                }
                catch (Exception ex)
                {
                    StoreMirrorLog.SubscriberFailed(_logger, _prefix, ex);
                }
            }
        }
    }
}

/// <summary>One decoded value and the revision it was written at.</summary>
public sealed record MirrorItem<T>(T Value, long ModRevision);

/// <summary>Everything under a prefix as of <paramref name="Revision"/>.</summary>
/// <param name="Items">The values by key.</param>
/// <param name="Revision">The store revision this snapshot reflects.</param>
/// <param name="ChangedKeys">The keys put or deleted since the previous snapshot the subscriber received, so it can work
/// on what changed only; null after a (re)load and on a subscriber's first snapshot, when anything may have changed.</param>
public sealed record MirrorSnapshot<T>(ImmutableSortedDictionary<string, MirrorItem<T>> Items, long Revision, IReadOnlyCollection<string>? ChangedKeys = null);

internal static partial class StoreMirrorLog
{
    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Store history under {Prefix} was compacted to revision {Revision}; reloading")]
    public static partial void Reloading(ILogger logger, string prefix, long revision);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Warning, Message = "Store unavailable while watching {Prefix}; serving the last known state, retrying in {Delay}: {Reason}")]
    public static partial void StoreUnavailable(ILogger logger, string prefix, TimeSpan delay, string reason);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Error, Message = "Ignoring {Key} at revision {Revision}: it cannot be read ({Reason})")]
    public static partial void Undecodable(ILogger logger, string key, long revision, string reason);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Error, Message = "A subscriber to {Prefix} failed")]
    public static partial void SubscriberFailed(ILogger logger, string prefix, Exception exception);
}
