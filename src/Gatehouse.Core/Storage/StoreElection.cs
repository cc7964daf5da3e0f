using Microsoft.Extensions.Logging;

namespace Gatehouse.Storage;

/// <summary>
/// Elects one instance among those sharing a store to run periodic work (renewals due by time, key rotation and
/// rewrap). The leader holds a lease-backed <see cref="StoreLock"/> on <c>locks/leader/&lt;name&gt;</c>; the others
/// read the key every poll interval and campaign when it is gone, so leadership moves within the lease TTL plus one
/// poll interval when the leader dies or is cut off from the store. A leader that cannot keep its lease alive steps
/// down at once (<see cref="StoreLock.Lost"/>): at most one instance believes it leads while the store is reachable.
/// </summary>
public sealed partial class StoreElection
{
    private readonly IStore _store;
    private readonly string _key;
    private readonly string _candidate;
    private readonly TimeSpan _ttl;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly List<Action<bool>> _subscribers = [];
    private volatile StoreLock? _held;

    /// <param name="store">The shared store.</param>
    /// <param name="name">What the election is for; one key per name.</param>
    /// <param name="candidate">This instance's id, written into the leader key.</param>
    /// <param name="ttl">The leader's lease TTL.</param>
    /// <param name="time">The clock.</param>
    /// <param name="logger">Where leadership changes are logged.</param>
    public StoreElection(IStore store, string name, string candidate, TimeSpan ttl, TimeProvider time, ILogger logger)
    {
        _store = store;
        _key = StoreKeys.Lock("leader/" + name);
        _candidate = candidate;
        _ttl = ttl;
        _time = time;
        _logger = logger;
    }

    /// <summary>How often a follower looks whether the leader key is gone.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Whether this instance leads now.</summary>
    public bool IsLeader => _held is { } held && !held.Lost.IsCancellationRequested;

    /// <summary>The leader's fence: writes conditional on it land only while this instance leads. Null when following.</summary>
    public StoreCondition? Fence => _held is { } held && !held.Lost.IsCancellationRequested ? held.Fence : null;

    /// <summary>Registers a callback for leadership changes (true: became leader; false: stepped down), called on
    /// the election's loop.</summary>
    public void Subscribe(Action<bool> onChange)
    {
        lock (_subscribers)
        {
            _subscribers.Add(onChange);
        }
    }

    /// <summary>Campaigns until cancelled; steps down (revokes the lease) on the way out.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var failures = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                if (await _store.GetAsync(_key, cancellationToken) is null
                    && await StoreLock.TryAcquireAsync(_store, _key, _candidate, _ttl, _time, cancellationToken) is { } held)
                {
                    failures = 0;
                    await LeadAsync(held, cancellationToken);
                    continue;
                }

                failures = 0;
                await Task.Delay(PollInterval, _time, cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // The store is away: nobody can be elected through it; try again with backoff.
                failures++;
                var delay = TimeSpan.FromMilliseconds(Math.Min(5000, 100 * Math.Pow(2, Math.Min(failures, 10))));
                LogCampaignFailed(_logger, _key, ex.Message);
                await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    private async Task LeadAsync(StoreLock held, CancellationToken cancellationToken)
    {
        _held = held;
        LogElected(_logger, _key, _candidate, held.Revision);
        Notify(true);
        try
        {
            using var lost = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, held.Lost);
            await Task.Delay(Timeout.InfiniteTimeSpan, _time, lost.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        finally
        {
            _held = null;
            if (!cancellationToken.IsCancellationRequested)
            {
                LogSteppedDown(_logger, _key, _candidate);
            }

            Notify(false);
            await held.DisposeAsync();
        }
    }

    private void Notify(bool leading)
    {
        lock (_subscribers)
        {
            foreach (var subscriber in _subscribers)
            {
                try
                {
                    subscriber(leading);
                }
                catch (Exception ex)
                {
                    LogSubscriberFailed(_logger, _key, ex);
                }
            }
        }
    }

    [LoggerMessage(EventId = 1011, Level = LogLevel.Information, Message = "Elected leader for {Key} as {Candidate} at revision {Revision}")]
    private static partial void LogElected(ILogger logger, string key, string candidate, long revision);

    [LoggerMessage(EventId = 1012, Level = LogLevel.Warning, Message = "Stepped down as leader for {Key} ({Candidate}): the lease could not be kept alive")]
    private static partial void LogSteppedDown(ILogger logger, string key, string candidate);

    [LoggerMessage(EventId = 1013, Level = LogLevel.Warning, Message = "Cannot campaign for {Key}, retrying: {Reason}")]
    private static partial void LogCampaignFailed(ILogger logger, string key, string reason);

    [LoggerMessage(EventId = 1014, Level = LogLevel.Error, Message = "A leadership subscriber for {Key} failed")]
    private static partial void LogSubscriberFailed(ILogger logger, string key, Exception exception);
}
