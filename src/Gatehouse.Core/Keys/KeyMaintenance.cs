using Gatehouse.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Gatehouse.Keys;

/// <summary>Automatic rotation settings.</summary>
public sealed record KeyMaintenanceOptions
{
    /// <summary>Rotate when the active version is this old; <see cref="TimeSpan.Zero"/> turns automatic rotation off.</summary>
    public TimeSpan RotationPeriod { get; init; } = TimeSpan.FromDays(90);

    /// <summary>The provider new versions go to.</summary>
    public required string Provider { get; init; }

    /// <summary>How often to look whether rotation is due (also picks up rotations made elsewhere).</summary>
    public TimeSpan CheckInterval { get; init; } = TimeSpan.FromHours(1);

    /// <summary>TTL of the maintenance lock's lease.</summary>
    public TimeSpan LockTtl { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>The id this instance writes into the lock.</summary>
    public string InstanceId { get; init; } = $"{Environment.MachineName}/{Environment.ProcessId}";

    /// <summary>The election that picks the instance doing periodic work; null: this instance (a single instance).
    /// The maintenance lock is taken either way.</summary>
    public StoreElection? Leadership { get; init; }
}

/// <summary>
/// Rotates the master key when the active version is older than the rotation period, then rewraps every record onto
/// the new version. Runs on the elected instance (<see cref="KeyMaintenanceOptions.Leadership"/>), under a
/// lease-backed lock, and the ring is re-read under the lock, so a rotation another instance just made is not repeated.
/// </summary>
public sealed partial class KeyMaintenance(IStore store, KeyRing ring, EnvelopeCipher cipher, KeyMaintenanceOptions options, TimeProvider time, ILogger<KeyMaintenance> logger)
    : BackgroundService
{
    private static readonly string LockKey = StoreKeys.Lock("keys/maintenance");

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await ControlPlane.Enter(); // issuing, sealing, key generation: on the thread pool, never on an I/O thread
        if (options.RotationPeriod <= TimeSpan.Zero)
        {
            return;
        }

        while (!stoppingToken.IsCancellationRequested)
        {
            var due = ring.Record.Active.Created + options.RotationPeriod;
            var wait = due - time.GetUtcNow();
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait < options.CheckInterval ? wait : options.CheckInterval, time, stoppingToken);
                continue;
            }

            if (options.Leadership is { IsLeader: false })
            {
                await Task.Delay(TimeSpan.FromMinutes(1), time, stoppingToken); // the elected instance rotates
                continue;
            }

            try
            {
                await RotateIfDueAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                LogFailed(logger, ex.Message);
            }

            await Task.Delay(TimeSpan.FromMinutes(1), time, stoppingToken);
        }
    }

    /// <summary>Rotates and rewraps when due and this instance wins the lock; false when there was nothing to do.</summary>
    public async Task<bool> RotateIfDueAsync(CancellationToken cancellationToken)
    {
        await using var held = await StoreLock.TryAcquireAsync(store, LockKey, options.InstanceId, options.LockTtl, time, cancellationToken);
        if (held is null)
        {
            return false; // another instance is at it
        }

        if (await KeyRingStore.ReadAsync(store, cancellationToken) is not var (record, revision))
        {
            return false;
        }

        ring.Apply(record, revision);
        if (record.Active.Created + options.RotationPeriod > time.GetUtcNow())
        {
            return false; // rotated elsewhere meanwhile
        }

        var added = await KeyRingStore.RotateAsync(store, ring, options.Provider, time, cancellationToken);
        LogRotated(logger, added.Version, added.Provider, options.RotationPeriod.TotalDays);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, held.Lost);
        var result = await new KeyRewrapper(store, cipher, SealedRecords.All).RunAsync(null, linked.Token);
        LogRewrapped(logger, result.Rewrapped, result.AlreadyCurrent, result.Failures.Count, added.Version);
        foreach (var failure in result.Failures)
        {
            LogRewrapFailure(logger, failure);
        }

        return true;
    }

    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Master key rotated: version {Version} on provider {Provider} is active (rotation period {PeriodDays} days)")]
    private static partial void LogRotated(ILogger logger, uint version, string provider, double periodDays);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Information, Message = "Rewrap done: {Rewrapped} records moved to version {Version}, {Current} already there, {Failed} failed")]
    private static partial void LogRewrapped(ILogger logger, int rewrapped, int current, int failed, uint version);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Error, Message = "Rewrap failed for a record: {Reason}")]
    private static partial void LogRewrapFailure(ILogger logger, string reason);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Error, Message = "Automatic key rotation failed: {Reason}")]
    private static partial void LogFailed(ILogger logger, string reason);
}
