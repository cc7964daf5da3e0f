using Gatehouse.Acme;
using System.Security.Cryptography;
using Gatehouse.Keys;
using Gatehouse.Sites;
using Gatehouse.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Gatehouse.Certificates;

/// <summary>The certificate manager's settings.</summary>
public sealed record CertificateManagerOptions
{
    /// <summary>TTL of the per-certificate lock's lease (kept alive while working).</summary>
    public TimeSpan LockTtl { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Issuances run at once.</summary>
    public int MaxConcurrentIssuances { get; init; } = 4;

    /// <summary>Certificates Gatehouse needs for itself (ids start with '_'), e.g. the admin listener's.</summary>
    public IReadOnlyList<CertificateDemand> InternalCertificates { get; init; } = [];

    /// <summary>The id this instance writes into locks it holds.</summary>
    public string InstanceId { get; init; } = $"{Environment.MachineName}/{Environment.ProcessId}";

    /// <summary>The election that picks the one instance doing scheduled work (renewals, renewal advice); null: this
    /// instance does it all (a single instance). Work a site asks for (a new certificate, changed names) is done by
    /// whichever instance takes the certificate's lock first, elected or not.</summary>
    public StoreElection? Leadership { get; init; }

    /// <summary>Completes when this instance's listeners are bound; nothing is issued before, so that a CA validating
    /// a challenge (which may reach this instance) never finds the port closed.</summary>
    public Task ListenersReady { get; init; } = Task.CompletedTask;
}

/// <summary>
/// Turns desired state into certificates: watches sites and certificate records, decides with
/// <see cref="RenewalPolicy"/> what is due, and issues under a per-certificate lock. Work is indexed by its due
/// time; only certificates whose site or record changed are decided again. Runs on every instance; the lock makes
/// one of them do each piece of work, every write it makes is fenced by the lock, and the record is read again under
/// the lock so that work another instance finished is not repeated. Renewals due by time run on the elected instance
/// only (<see cref="CertificateManagerOptions.Leadership"/>). When a certificate's lock goes away (its holder finished,
/// or died and its lease ran out) every instance decides about that certificate again at once.
/// </summary>
public sealed class CertificateManager : BackgroundService
{
    private readonly IStore _store;
    private readonly StoreMirror<SiteDefinition> _sites;
    private readonly StoreMirror<CertificateRecord> _certificates;
    private readonly Dictionary<string, ICertificateIssuer> _issuers;
    private readonly EnvelopeCipher _cipher;
    private readonly TimeProvider _time;
    private readonly CertificateManagerOptions _options;
    private readonly ILogger<CertificateManager> _logger;

    /// <summary>When to decide again about a certificate after work on it ended without a newer record arriving.</summary>
    private static readonly TimeSpan RecheckAfterRun = TimeSpan.FromSeconds(1);

    private readonly Lock _gate = new();
    private readonly HashSet<string> _dirty = new(StringComparer.Ordinal);
    private readonly PriorityQueue<string, DateTimeOffset> _queue = new();
    private readonly Dictionary<string, DateTimeOffset> _scheduled = new(StringComparer.Ordinal);
    private readonly HashSet<string> _running = new(StringComparer.Ordinal);
    private TaskCompletionSource _wake = NewSignal();
    private readonly Dictionary<string, CertificateDemand> _demands = new(StringComparer.Ordinal);
    private MirrorSnapshot<SiteDefinition>? _lastSites;
    private MirrorSnapshot<CertificateRecord>? _lastCertificates;
    private MirrorSnapshot<string>? _lastLocks;

    public CertificateManager(
        IStore store,
        StoreMirror<SiteDefinition> sites,
        StoreMirror<CertificateRecord> certificates,
        IEnumerable<ICertificateIssuer> issuers,
        EnvelopeCipher cipher,
        TimeProvider time,
        CertificateManagerOptions options,
        ILogger<CertificateManager> logger)
    {
        _store = store;
        _sites = sites;
        _certificates = certificates;
        _issuers = issuers.ToDictionary(i => i.Name, StringComparer.Ordinal);
        _cipher = cipher;
        _time = time;
        _options = options;
        _logger = logger;
    }

    /// <summary>The certificate a site needs, or null when the edge does not terminate its TLS (a passthrough
    /// site's backends present their own certificates).</summary>
    public static CertificateDemand? DemandOf(SiteDefinition site) =>
        site.Mode.TerminatesTls()
            ? new(site.Id, site.Hosts, site.Issuers.Count > 0 ? site.Issuers : [LocalCertificateAuthority.IssuerName], site.KeyType, site.Profile)
            : null;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await ControlPlane.Enter(); // issuing, sealing, key generation: on the thread pool, never on an I/O thread
        await Task.WhenAll(_sites.Loaded, _certificates.Loaded, _options.ListenersReady).WaitAsync(stoppingToken);
        lock (_gate)
        {
            foreach (var demand in _options.InternalCertificates)
            {
                _demands[demand.Id] = demand;
                _dirty.Add(demand.Id);
            }
        }

        _sites.Subscribe(snapshot =>
        {
            lock (_gate)
            {
                // Keep the demand index current for the sites that changed only.
                foreach (var id in MarkChanged(ref _lastSites, snapshot, StoreKeys.SitesPrefix))
                {
                    if (snapshot.Items.TryGetValue(StoreKeys.Site(id), out var site) && DemandOf(site.Value) is { } demand)
                    {
                        _demands[id] = demand;
                    }
                    else if (!_options.InternalCertificates.Any(d => d.Id == id))
                    {
                        _demands.Remove(id);
                    }
                }
            }

            Wake();
        });
        _certificates.Subscribe(snapshot =>
        {
            lock (_gate)
            {
                MarkChanged(ref _lastCertificates, snapshot, StoreKeys.CertificatesPrefix);
            }

            Wake();
        });

        // A released or expired certificate lock: the work it covered may be done, or may need another instance.
        var locks = new StoreMirror<string>(_store, CertificateLocksPrefix, entry => System.Text.Encoding.UTF8.GetString(entry.Value.Span), _logger);
        locks.Subscribe(snapshot =>
        {
            lock (_gate)
            {
                MarkReleased(snapshot);
            }

            Wake();
        });
        var watchingLocks = locks.RunAsync(stoppingToken);

        // A newly elected instance decides about every certificate: scheduled work is its own from now on.
        _options.Leadership?.Subscribe(leading =>
        {
            if (leading)
            {
                lock (_gate)
                {
                    _dirty.UnionWith(_demands.Keys);
                    _dirty.UnionWith(_certificates.Current.Items.Keys.Select(key => StoreKeys.IdOf(key, StoreKeys.CertificatesPrefix)));
                }

                Wake();
            }
        });

        using var concurrency = new SemaphoreSlim(_options.MaxConcurrentIssuances);
        var inFlight = new List<Task>();
        while (!stoppingToken.IsCancellationRequested)
        {
            var wake = Volatile.Read(ref _wake).Task; // taken before collecting, so no wake-up is lost
            var (due, next) = CollectDueWork();
            foreach (var (demand, record) in due)
            {
                await concurrency.WaitAsync(stoppingToken);
                inFlight.Add(RunOneAsync(demand, record, concurrency, stoppingToken));
            }

            inFlight.RemoveAll(t => t.IsCompleted);
            var wait = next is { } at ? at - _time.GetUtcNow() : TimeSpan.FromHours(1);
            wait = TimeSpan.FromMilliseconds(Math.Clamp(wait.TotalMilliseconds, 0, TimeSpan.FromHours(1).TotalMilliseconds));
            try
            {
                await wake.WaitAsync(wait, _time, stoppingToken);
            }
            catch (TimeoutException)
            {
                // something is due
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
        }

        await Task.WhenAll(inFlight).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await watchingLocks.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private static readonly string CertificateLocksPrefix = StoreKeys.Lock("certs/");

    /// <summary>Marks the certificates whose lock disappeared since the last snapshot. Called under <see cref="_gate"/>.</summary>
    private void MarkReleased(MirrorSnapshot<string> snapshot)
    {
        var previous = _lastLocks?.Items;
        if (previous is not null)
        {
            // This instance's own locks end with its own runs, which decide again when they end.
            var gone = (snapshot.ChangedKeys ?? previous.Keys)
                .Where(key => !snapshot.Items.ContainsKey(key) && previous.TryGetValue(key, out var held) && held.Value != _options.InstanceId);
            _dirty.UnionWith(gone.Select(key => StoreKeys.IdOf(key, CertificateLocksPrefix)));
        }

        _lastLocks = snapshot;
    }

    /// <summary>Marks the ids that changed between the last snapshot and this one (the mirror's delta when it has
    /// one; a full comparison after a reload) and returns them. Called under <see cref="_gate"/>.</summary>
    private List<string> MarkChanged<T>(ref MirrorSnapshot<T>? last, MirrorSnapshot<T> snapshot, string prefix)
        where T : class
    {
        var changed = new List<string>();
        var previous = last?.Items;
        if (snapshot.ChangedKeys is { } keys && previous is not null)
        {
            changed.AddRange(keys.Select(key => StoreKeys.IdOf(key, prefix)));
        }
        else
        {
            foreach (var (key, item) in snapshot.Items)
            {
                if (previous is null || !previous.TryGetValue(key, out var old) || old.ModRevision != item.ModRevision)
                {
                    changed.Add(StoreKeys.IdOf(key, prefix));
                }
            }

            if (previous is not null)
            {
                foreach (var (key, _) in previous)
                {
                    if (!snapshot.Items.ContainsKey(key))
                    {
                        changed.Add(StoreKeys.IdOf(key, prefix));
                    }
                }
            }
        }

        _dirty.UnionWith(changed);
        last = snapshot;
        return changed;
    }

    private void Wake() => Interlocked.Exchange(ref _wake, NewSignal()).TrySetResult();

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Decides again for what changed, pops what is due, and returns the next due time.</summary>
    private (List<(CertificateDemand Demand, MirrorItem<CertificateRecord>? Record)> Due, DateTimeOffset? Next) CollectDueWork()
    {
        var now = _time.GetUtcNow();
        var certificates = _certificates.Current.Items;
        var due = new List<(CertificateDemand, MirrorItem<CertificateRecord>?)>();
        lock (_gate)
        {
            var deferred = new List<string>();
            foreach (var id in _dirty)
            {
                if (_running.Contains(id))
                {
                    deferred.Add(id); // decided again once the running work ends
                    continue;
                }

                _queue.Enqueue(id, now); // decide below, in due-time order with the rest
                _scheduled[id] = now;
            }

            _dirty.Clear();
            _dirty.UnionWith(deferred);
            while (_queue.TryPeek(out var id, out var at) && at <= now)
            {
                _queue.Dequeue();
                if (!_scheduled.TryGetValue(id, out var scheduledAt) || scheduledAt != at)
                {
                    continue; // superseded
                }

                _scheduled.Remove(id);
                certificates.TryGetValue(StoreKeys.Certificate(id), out var record);
                if (!_demands.TryGetValue(id, out var demand))
                {
                    if (record is not null)
                    {
                        _running.Add(id);
                        due.Add((new CertificateDemand(id, [], []), record)); // orphan: remove
                    }

                    continue;
                }

                var decision = RenewalPolicy.Decide(demand, record?.Value, now);
                if (decision.Scheduled && _options.Leadership is { IsLeader: false })
                {
                    continue; // the elected instance does it; this one decides again if it is elected
                }

                if (decision.Action is RenewalAction.Issue or RenewalAction.CheckRenewalInfo)
                {
                    _running.Add(id);
                    due.Add((demand, record));
                }
                else
                {
                    _scheduled[id] = decision.DueAt;
                    _queue.Enqueue(id, decision.DueAt);
                }
            }

            return (due, _queue.TryPeek(out _, out var next) ? next : null);
        }
    }

    private async Task RunOneAsync(CertificateDemand demand, MirrorItem<CertificateRecord>? seen, SemaphoreSlim concurrency, CancellationToken cancellationToken)
    {
        var retryAt = (DateTimeOffset?)null;
        try
        {
            await using var held = await StoreLock.TryAcquireAsync(_store, StoreKeys.Lock("certs/" + demand.Id), _options.InstanceId, _options.LockTtl, _time, cancellationToken);
            if (held is null)
            {
                // Another instance is on it; look again once its lock would have expired.
                retryAt = _time.GetUtcNow() + _options.LockTtl;
                return;
            }

            using var work = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, held.Lost);

            // Re-read under the lock: another instance may have finished this work already.
            var key = StoreKeys.Certificate(demand.Id);
            var entry = await _store.GetAsync(key, work.Token);
            var current = entry is null ? null : CoreJson.Deserialize<CertificateRecord>(entry);
            if (demand.Names.Count == 0)
            {
                if (entry is not null)
                {
                    await _store.CommitAsync(new StoreTransaction().If(held.Fence).If(StoreCondition.Unchanged(key, entry.ModRevision)).Delete(key), work.Token);
                    CertificateLog.Removed(_logger, demand.Id);
                }

                return;
            }

            var decision = RenewalPolicy.Decide(demand, current, _time.GetUtcNow());
            if (decision.Action == RenewalAction.Wait || (decision.Scheduled && _options.Leadership is { IsLeader: false }))
            {
                return;
            }

            var updated = decision.Action == RenewalAction.CheckRenewalInfo
                ? await WithRenewalAdviceAsync(current!, work.Token)
                : await IssueAsync(demand, current, decision.Reason, work.Token);
            if (decision.Action == RenewalAction.Issue && updated.Status == CertificateStatus.Valid && updated.RenewalInfoCheckAt <= _time.GetUtcNow())
            {
                // Ask for the new certificate's renewal window in the same run: one write and one lock per issuance.
                updated = await WithRenewalAdviceAsync(updated, work.Token);
            }
            var condition = entry is null ? StoreCondition.Absent(key) : StoreCondition.Unchanged(key, entry.ModRevision);
            await _store.CommitAsync(new StoreTransaction().If(held.Fence).If(condition).Put(key, CoreJson.Serialize(updated)), work.Token);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            // The store is away or the lock was lost: try again shortly; the records are unchanged.
            CertificateLog.WorkFailed(_logger, demand.Id, ex.Message);
            retryAt = _time.GetUtcNow() + TimeSpan.FromSeconds(5);
        }
        finally
        {
            // What this run wrote comes back through the mirror and is decided again then, on fresh data. The
            // scheduled look covers runs that wrote nothing (the mirror was behind, or another instance was first),
            // without spinning on a stale snapshot.
            var at = retryAt ?? _time.GetUtcNow() + RecheckAfterRun;
            lock (_gate)
            {
                _running.Remove(demand.Id);
                _scheduled[demand.Id] = at;
                _queue.Enqueue(demand.Id, at);
            }

            concurrency.Release();
            Wake();
        }
    }

    /// <summary>Issues with a fresh key, trying each issuer in order; returns the record to write (a success, or the
    /// previous record with the failure noted).</summary>
    private async Task<CertificateRecord> IssueAsync(CertificateDemand demand, CertificateRecord? current, string reason, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var keyType = demand.KeyType ?? DefaultKeyType(demand);
        using var key = AcmeCsr.CreateKey(keyType switch
        {
            "ec384" => AcmeCertificateKeyType.EcdsaP384,
            "rsa2048" => AcmeCertificateKeyType.Rsa2048,
            "rsa3072" => AcmeCertificateKeyType.Rsa3072,
            "rsa4096" => AcmeCertificateKeyType.Rsa4096,
            _ => AcmeCertificateKeyType.EcdsaP256,
        });
        var csr = AcmeCsr.Create(key, demand.Names);
        var errors = new List<string>();
        var attempts = new List<CertificateAttempt>();
        var retryable = true;
        DateTimeOffset? issuerRetryAfter = null;
        foreach (var issuerName in demand.Issuers)
        {
            if (!_issuers.TryGetValue(issuerName, out var issuer))
            {
                errors.Add($"{issuerName}: no such issuer is configured");
                continue;
            }

            CertificateLog.Issuing(_logger, demand.Id, string.Join(",", demand.Names), issuerName, reason);
            try
            {
                var previous = current?.Issuer == issuerName ? current.ChainPem : null;
                var chain = await issuer.IssueAsync(new IssuanceRequest(demand.Id, demand.Names, csr, previous) { Profile = demand.Profile }, cancellationToken);
                var issued = Issued(demand, issuerName, chain, key, now) with { KeyType = keyType == "ec256" ? null : keyType };
                attempts.Add(new CertificateAttempt(now, issuerName, true, "issued serial " + issued.Serial));
                issued = issued with { History = History(attempts, current) };

                // An issuer that gives renewal advice is asked right away; its window replaces the one-third rule.
                return issuer is IRenewalInfoSource ? issued with { RenewalInfoCheckAt = now } : issued;
            }
            catch (IssuanceException ex)
            {
                attempts.Add(new CertificateAttempt(now, issuerName, false, ex.Message));
                errors.Add($"{issuerName}: {ex.Message}");
                retryable &= ex.Retryable;
                issuerRetryAfter = ex.RetryAfter;
            }
            catch (Exception ex) when (ex is CryptographicException or FormatException)
            {
                attempts.Add(new CertificateAttempt(now, issuerName, false, ex.Message));
                errors.Add($"{issuerName}: {ex.Message}");
            }
        }

        var failures = (current?.ConsecutiveFailures ?? 0) + 1;
        var retryAt = RenewalPolicy.NextRetry(retryable ? failures : Math.Max(failures, 10), now, issuerRetryAfter, Random.Shared.NextDouble());
        var error = string.Join("; ", errors);
        if (!retryable)
        {
            // A refusal that repeats unchanged (a blocked name, CAA, a wrong EAB key): no retry storm; people fix the cause.
            error += $" (not retryable: the next attempt waits until {retryAt.UtcDateTime:yyyy-MM-dd HH:mm}Z, a change of the names, or `gatehouse certs renew`)";
        }

        CertificateLog.IssuanceFailed(_logger, demand.Id, failures, retryAt, error);
        return (current ?? new CertificateRecord { Id = demand.Id, Names = demand.Names }) with
        {
            History = History(attempts, current),
            Names = current?.HasChain == true ? current.Names : demand.Names,
            AttemptedNames = demand.Names,
            Status = CertificateStatus.Failing,
            LastError = error,
            ConsecutiveFailures = failures,
            RetryAfter = retryAt,
            LastAttempt = now,
        };
    }

    private CertificateRecord Issued(CertificateDemand demand, string issuerName, IssuedChain chain, AsymmetricAlgorithm key, DateTimeOffset now)
    {
        // Managed reading of the leaf's fields: the edge loads the chain through OpenSSL once, when it serves it.
        var certificates = CertificateFields.ReadPem(chain.ChainPem);
        if (certificates.Count == 0)
        {
            throw new FormatException("the issuer returned no certificate");
        }

        var leaf = certificates[0];
        if (!leaf.SubjectPublicKeyInfo.Span.SequenceEqual(key.ExportSubjectPublicKeyInfo()))
        {
            throw new FormatException("the issued certificate is not for the key that was sent");
        }

        var pkcs8 = key.ExportPkcs8PrivateKey();
        byte[] sealedKey;
        try
        {
            sealedKey = _cipher.Seal(StoreKeys.Certificate(demand.Id), pkcs8);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(pkcs8);
        }

        var (notBefore, notAfter) = (leaf.NotBefore.ToUniversalTime(), leaf.NotAfter.ToUniversalTime());
        CertificateLog.Issued(_logger, demand.Id, string.Join(",", demand.Names), issuerName, leaf.SerialNumber, notAfter);
        return new CertificateRecord
        {
            Id = demand.Id,
            Names = demand.Names,
            Issuer = issuerName,
            ChainPem = chain.ChainPem,
            SealedKey = sealedKey,
            Serial = leaf.SerialNumber,
            NotBefore = notBefore,
            NotAfter = notAfter,
            RenewAfter = RenewalPolicy.RenewAfter(notBefore, notAfter),
            Profile = demand.Profile,
            Status = CertificateStatus.Valid,
            LastAttempt = now,
        };
    }

    /// <summary>The key type of the first issuer that names one (an ACME issuer's <c>keyType</c>), else ec256.</summary>
    private string DefaultKeyType(CertificateDemand demand) =>
        demand.Issuers.Select(name => _issuers.GetValueOrDefault(name)).OfType<AcmeIssuer>().Select(i => i.DefaultKeyType).FirstOrDefault(k => k is not null) ?? "ec256";

    private static IReadOnlyList<CertificateAttempt> History(List<CertificateAttempt> attempts, CertificateRecord? current) =>
        [.. Enumerable.Reverse(attempts).Concat(current?.History ?? []).Take(CertificateRecord.MaxHistory)];

    /// <summary>Asks the certificate's issuer for renewal advice (RFC 9773) and returns the record with it: renewal at
    /// the time picked in the CA's window, the next question when the CA said. Failures keep the current plan and ask
    /// again in an hour.</summary>
    private async Task<CertificateRecord> WithRenewalAdviceAsync(CertificateRecord current, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        if (current.Issuer is null || !_issuers.TryGetValue(current.Issuer, out var issuer) || issuer is not IRenewalInfoSource source || current.ChainPem is null)
        {
            return current with { RenewalInfoCheckAt = null };
        }

        try
        {
            var advice = await source.GetRenewalAdviceAsync(current.ChainPem, cancellationToken);
            if (advice is null)
            {
                return current with { RenewalInfoCheckAt = null };
            }

            // A window that ended before this certificate began is about its predecessor (the CA has not caught up):
            // keep the plan and ask again when the CA said.
            if (current.NotBefore is { } notBefore && advice.WindowEnd < notBefore)
            {
                return current with { RenewalInfoCheckAt = advice.CheckAgainAt };
            }

            // Keep a time already picked inside an unchanged window, so that asking again does not move it around.
            var renewAt = current.RenewalWindowStart == advice.WindowStart && current.RenewalWindowEnd == advice.WindowEnd && current.RenewAfter is { } kept
                ? kept
                : advice.RenewAt;
            CertificateLog.RenewalAdvice(_logger, current.Id, advice.WindowStart, advice.WindowEnd, renewAt, advice.CheckAgainAt);
            return current with
            {
                RenewAfter = renewAt,
                RenewalWindowStart = advice.WindowStart,
                RenewalWindowEnd = advice.WindowEnd,
                RenewalInfoCheckAt = advice.CheckAgainAt,
            };
        }
        catch (IssuanceException ex)
        {
            CertificateLog.RenewalAdviceFailed(_logger, current.Id, ex.Message);
            return current with { RenewalInfoCheckAt = now + TimeSpan.FromHours(1) };
        }
    }
}

internal static partial class CertificateLog
{
    [LoggerMessage(EventId = 3006, Level = LogLevel.Information, Message = "Renewal advice for {CertificateId}: window {Start:u} – {End:u}, renewing at {RenewAt:u}, asking again at {CheckAgain:u}")]
    public static partial void RenewalAdvice(ILogger logger, string certificateId, DateTimeOffset start, DateTimeOffset end, DateTimeOffset renewAt, DateTimeOffset checkAgain);

    [LoggerMessage(EventId = 3007, Level = LogLevel.Warning, Message = "Renewal advice for {CertificateId} could not be fetched, asking again in an hour: {Reason}")]
    public static partial void RenewalAdviceFailed(ILogger logger, string certificateId, string reason);

    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Issuing certificate {CertificateId} for {Names} from {Issuer}: {Reason}")]
    public static partial void Issuing(ILogger logger, string certificateId, string names, string issuer, string reason);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Information, Message = "Issued certificate {CertificateId} for {Names} by {Issuer}, serial {Serial}, not after {NotAfter:u}")]
    public static partial void Issued(ILogger logger, string certificateId, string names, string issuer, string serial, DateTimeOffset notAfter);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Warning, Message = "Issuing certificate {CertificateId} failed ({Failures} in a row), next attempt at {RetryAt:u}: {Error}")]
    public static partial void IssuanceFailed(ILogger logger, string certificateId, int failures, DateTimeOffset retryAt, string error);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Information, Message = "Removed certificate {CertificateId}: no site needs it any more")]
    public static partial void Removed(ILogger logger, string certificateId);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Warning, Message = "Work on certificate {CertificateId} was interrupted, retrying shortly: {Reason}")]
    public static partial void WorkFailed(ILogger logger, string certificateId, string reason);
}
