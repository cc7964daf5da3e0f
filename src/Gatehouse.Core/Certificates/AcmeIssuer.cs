using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Acme;
using Gatehouse.Keys;
using Gatehouse.Storage;
using Microsoft.Extensions.Logging;

namespace Gatehouse.Certificates;

/// <summary>An ACME CA as configured: where it is, who the account is, how challenges are answered.</summary>
public sealed record AcmeIssuerSettings
{
    public required string Name { get; init; }

    public required Uri Directory { get; init; }

    public IReadOnlyList<string> Contact { get; init; } = [];

    public bool AcceptTerms { get; init; }

    /// <summary>External account binding key id; <see cref="EabHmacKey"/> goes with it.</summary>
    public string? EabKeyId { get; init; }

    /// <summary>The EAB HMAC key (already decoded); never logged.</summary>
    public byte[]? EabHmacKey { get; init; }

    /// <summary>Pick the chain whose root has this common name, when the CA offers alternates.</summary>
    public string? PreferredChain { get; init; }

    /// <summary>The certificate key type for sites that do not name one (ec256, ec384, rsa2048, rsa3072, rsa4096).</summary>
    public string? DefaultKeyType { get; init; }

    /// <summary>The account key's algorithm for a new account.</summary>
    public AcmeKeyAlgorithm AccountKeyAlgorithm { get; init; } = AcmeKeyAlgorithm.Es256;
}

/// <summary>What the store holds for an ACME issuer's account: its URL at the CA and its key, sealed.</summary>
/// <param name="Directory">The CA's directory the account belongs to.</param>
/// <param name="SealedKey">The account key (PKCS#8), sealed.</param>
/// <param name="Created">When the key was made.</param>
/// <param name="Url">The account URL, once registered.</param>
/// <param name="PendingSealedKey">During a key rollover: the new key, stored before the CA is asked to switch, so that
/// an instance that dies half-way leaves a key the CA may already expect; resolved on the next open.</param>
/// <param name="KeyChanged">When the key was last rolled over.</param>
public sealed record AcmeAccountRecord(Uri Directory, byte[] SealedKey, DateTimeOffset Created, Uri? Url = null, byte[]? PendingSealedKey = null, DateTimeOffset? KeyChanged = null);

/// <summary>An issuer's ACME account as the admin API shows it.</summary>
/// <param name="Issuer">The issuer's name.</param>
/// <param name="Directory">The CA's directory.</param>
/// <param name="Url">The account URL; null when no account is registered yet.</param>
/// <param name="Status">The account's status at the CA (valid, deactivated, revoked), or null when not asked.</param>
/// <param name="Contact">The contact URLs the CA has.</param>
/// <param name="KeyAlgorithm">The account key's JWS algorithm.</param>
/// <param name="Created">When the account key was made.</param>
/// <param name="KeyChanged">When the key was last rolled over.</param>
public sealed record AcmeAccountInfo(string Issuer, Uri Directory, Uri? Url, string? Status, IReadOnlyList<string> Contact, string? KeyAlgorithm, DateTimeOffset? Created, DateTimeOffset? KeyChanged);

/// <summary>
/// Issues from an ACME CA (RFC 8555) with the account this issuer keeps in the store: the account key is made once,
/// sealed like every private key, and shared by every instance; the account is registered again when the CA forgot
/// it. Challenges are answered through the store, so any instance the CA reaches answers them.
/// </summary>
public sealed partial class AcmeIssuer : ICertificateIssuer, IRenewalInfoSource, IDisposable
{
    private readonly AcmeIssuerSettings _settings;
    private readonly AcmeClient _client;
    private readonly IStore _store;
    private readonly EnvelopeCipher _cipher;
    private readonly IReadOnlyList<IAcmeChallengeSolver> _solvers;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _sessionGate = new(1, 1);
    private OpenSession? _session;
    private AcmeExternalAccountBinding? _eab;
    private long _parkedUntilTicks;

    public AcmeIssuer(AcmeIssuerSettings settings, HttpClient http, IStore store, EnvelopeCipher cipher, IReadOnlyList<IAcmeChallengeSolver> solvers, TimeProvider time, ILogger<AcmeIssuer> logger)
    {
        _settings = settings;
        _store = store;
        _cipher = cipher;
        _solvers = solvers;
        _time = time;
        _logger = logger;
        _client = new AcmeClient(http, settings.Directory, new AcmeClientOptions { TimeProvider = time, Logger = logger });
    }

    public string Name => _settings.Name;

    /// <summary>The certificate key type for sites of this issuer that do not name one.</summary>
    public string? DefaultKeyType => _settings.DefaultKeyType;

    /// <summary>
    /// The account session (registered on first use); exposed for revocation and tests. The account record is read
    /// each time: when another instance (or the CLI) rolled the key over or deactivated the account, the session is
    /// opened again from the record, so no instance keeps signing with a key the CA no longer accepts.
    /// </summary>
    public async Task<AcmeAccountSession> GetSessionAsync(CancellationToken cancellationToken)
    {
        var key = StoreKeys.AcmeAccount(_settings.Name);
        var entry = await _store.GetAsync(key, cancellationToken);
        if (Volatile.Read(ref _session) is { } ready && entry is not null && ready.Revision == entry.ModRevision)
        {
            return ready.Session;
        }

        await _sessionGate.WaitAsync(cancellationToken);
        try
        {
            if (_session is { } current && (await _store.GetAsync(key, cancellationToken)) is { } latest && current.Revision == latest.ModRevision)
            {
                return current.Session;
            }

            // Sessions being replaced may still be signing an order in flight; their keys are left to the collector.
            var opened = await OpenAccountAsync(cancellationToken);
            Volatile.Write(ref _session, opened);
            return opened.Session;
        }
        finally
        {
            _sessionGate.Release();
        }
    }

    /// <summary>The account as stored and, when <paramref name="askCa"/>, as the CA has it now.</summary>
    public async Task<AcmeAccountInfo> GetAccountInfoAsync(bool askCa, CancellationToken cancellationToken)
    {
        var entry = await _store.GetAsync(StoreKeys.AcmeAccount(_settings.Name), cancellationToken);
        var record = entry is null ? null : CoreJson.Deserialize<AcmeAccountRecord>(entry);
        if (record is null || record.Directory != _settings.Directory)
        {
            return new AcmeAccountInfo(Name, _settings.Directory, null, null, _settings.Contact, null, null, null);
        }

        var info = new AcmeAccountInfo(Name, _settings.Directory, record.Url, null, _settings.Contact, null, record.Created, record.KeyChanged);
        if (!askCa || record.Url is null)
        {
            return info;
        }

        return await CallCaAsync(async () =>
        {
            var session = await GetSessionAsync(cancellationToken);
            var account = await session.GetAccountAsync(cancellationToken);
            return info with { Url = account.Url, Status = account.Status.ToString().ToLowerInvariant(), Contact = account.Contact, KeyAlgorithm = session.Key.AlgorithmName };
        });
    }

    /// <summary>
    /// Rolls the account key over (RFC 8555 §7.3.5) to a fresh key of the configured algorithm. The new key is stored
    /// (sealed, as pending) before the CA is asked, and made current after; an instance that dies in between leaves a
    /// pending key that the next open checks with the CA. Orders in flight at that moment may fail once and are
    /// retried with the new key.
    /// </summary>
    /// <exception cref="InvalidOperationException">No account is registered yet, or another rollover holds the lock.</exception>
    /// <exception cref="IssuanceException">The CA refused; the stored key is unchanged.</exception>
    public async Task<AcmeAccountInfo> RolloverAccountKeyAsync(CancellationToken cancellationToken)
    {
        var key = StoreKeys.AcmeAccount(_settings.Name);
        await using var held = await StoreLock.TryAcquireAsync(_store, StoreKeys.Lock("acme-account/" + _settings.Name), "rollover", TimeSpan.FromSeconds(30), _time, cancellationToken)
            ?? throw new InvalidOperationException($"Another change of the {Name} account is in progress; try again shortly.");
        var session = await GetSessionAsync(cancellationToken);
        var entry = await _store.GetAsync(key, cancellationToken);
        if (entry is null || session.AccountUrl is null)
        {
            throw new InvalidOperationException($"Issuer {Name} has no registered account yet; it registers on its first order.");
        }

        var record = CoreJson.Deserialize<AcmeAccountRecord>(entry);
        var fresh = AcmeAccountKey.Create(_settings.AccountKeyAlgorithm);
        var sealedKey = SealKey(fresh, key);
        var pending = await _store.CommitAsync(
            new StoreTransaction().If(held.Fence).If(StoreCondition.Unchanged(key, entry.ModRevision)).Put(key, CoreJson.Serialize(record with { PendingSealedKey = sealedKey })),
            cancellationToken);
        if (!pending.Succeeded)
        {
            fresh.Dispose();
            throw new InvalidOperationException($"The {Name} account changed while the rollover began; try again.");
        }

        try
        {
            await CallCaAsync(() => session.ChangeKeyAsync(fresh, cancellationToken));
        }
        catch
        {
            // The CA still has the old key: drop the pending one (best effort; the next open checks it anyway).
            await _store.CommitAsync(
                new StoreTransaction().If(StoreCondition.Unchanged(key, pending.Revision)).Put(key, CoreJson.Serialize(record)), CancellationToken.None);
            throw;
        }

        var now = _time.GetUtcNow();
        await PromotePendingAsync(key, record.Url, now, CancellationToken.None);
        LogAccountKeyRolledOver(_logger, Name, session.AccountUrl.AbsoluteUri);
        return await GetAccountInfoAsync(askCa: false, cancellationToken);
    }

    /// <summary>
    /// Deactivates the account at the CA (RFC 8555 §7.3.6) and forgets it: the CA refuses its key from then on, and
    /// the issuer's next order registers a new account with a new key.
    /// </summary>
    /// <exception cref="InvalidOperationException">No account is registered.</exception>
    /// <exception cref="IssuanceException">The CA refused; the account stays as it was.</exception>
    public async Task<AcmeAccountInfo> DeactivateAccountAsync(CancellationToken cancellationToken)
    {
        var key = StoreKeys.AcmeAccount(_settings.Name);
        await using var held = await StoreLock.TryAcquireAsync(_store, StoreKeys.Lock("acme-account/" + _settings.Name), "deactivate", TimeSpan.FromSeconds(30), _time, cancellationToken)
            ?? throw new InvalidOperationException($"Another change of the {Name} account is in progress; try again shortly.");
        var entry = await _store.GetAsync(key, cancellationToken);
        if (entry is null || CoreJson.Deserialize<AcmeAccountRecord>(entry) is not { Url: { } url } record || record.Directory != _settings.Directory)
        {
            throw new InvalidOperationException($"Issuer {Name} has no registered account to deactivate.");
        }

        var session = await GetSessionAsync(cancellationToken);
        var account = await CallCaAsync(() => session.DeactivateAsync(cancellationToken));
        await _store.CommitAsync(new StoreTransaction().If(held.Fence).Delete(key), CancellationToken.None);
        LogAccountDeactivated(_logger, Name, url.AbsoluteUri);
        return new AcmeAccountInfo(Name, _settings.Directory, url, account.Status.ToString().ToLowerInvariant(), account.Contact, session.Key.AlgorithmName, record.Created, record.KeyChanged);
    }

    private async Task PromotePendingAsync(string key, Uri? url, DateTimeOffset now, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < 10; attempt++)
        {
            var entry = await _store.GetAsync(key, cancellationToken);
            if (entry is null || CoreJson.Deserialize<AcmeAccountRecord>(entry) is not { PendingSealedKey: { } pending } record)
            {
                return;
            }

            var promoted = record with { SealedKey = pending, PendingSealedKey = null, KeyChanged = now, Url = url ?? record.Url };
            if ((await _store.CommitAsync(new StoreTransaction().If(StoreCondition.Unchanged(key, entry.ModRevision)).Put(key, CoreJson.Serialize(promoted)), cancellationToken)).Succeeded)
            {
                return;
            }
        }
    }

    /// <summary>Runs a call to the CA, turning its problems into <see cref="IssuanceException"/>.</summary>
    private async Task<T> CallCaAsync<T>(Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (AcmeException ex)
        {
            throw new IssuanceException(Describe(ex.Problem), ex.Problem.IsRetryable, ex.Problem.RetryAfter, ex);
        }
        catch (HttpRequestException ex)
        {
            throw new IssuanceException($"cannot reach the ACME directory {_settings.Directory}: {ex.Message}", retryable: true, innerException: ex);
        }
    }

    /// <summary>Until when the CA's rate limit holds this issuer back (nothing is sent to the CA before then).</summary>
    public DateTimeOffset? ParkedUntil => Interlocked.Read(ref _parkedUntilTicks) is var ticks and > 0 && new DateTimeOffset(ticks, TimeSpan.Zero) > _time.GetUtcNow()
        ? new DateTimeOffset(ticks, TimeSpan.Zero)
        : null;

    public async Task<IssuedChain> IssueAsync(IssuanceRequest request, CancellationToken cancellationToken)
    {
        if (ParkedUntil is { } parked)
        {
            throw new IssuanceException($"rateLimited: the CA's rate limit holds issuer {Name} back until {parked.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z (nothing sent)", retryable: true, parked);
        }

        try
        {
            var session = await GetSessionAsync(cancellationToken);
            var order = AcmeOrderRequest.ForNames(request.Names) with { Profile = request.Profile };
            if (request.PreviousChainPem is { } previous)
            {
                // RFC 9773 §5: name the certificate this one replaces (sent only when the CA offers renewal info).
                using var replaced = X509Certificate2.CreateFromPem(previous);
                order = order with { Replaces = AcmeCertificateId.Compute(replaced) };
            }

            var chain = await session.IssueCertificateAsync(order, request.CertificateSigningRequestDer, _solvers, _settings.PreferredChain, cancellationToken);
            return new IssuedChain(chain.Pem);
        }
        catch (AcmeException ex) when (ex.Problem.Is(AcmeErrors.RateLimited))
        {
            // RFC 8555 §6.6: the limit is the account's, so every certificate of this issuer waits, not just this one.
            var until = ex.Problem.RetryAfter ?? _time.GetUtcNow() + DefaultRateLimitPark;
            Interlocked.Exchange(ref _parkedUntilTicks, until.UtcTicks);
            LogParked(_logger, Name, until);
            throw new IssuanceException(Describe(ex.Problem) + $" (issuer parked until {until.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z)", retryable: true, until, ex);
        }
        catch (AcmeException ex)
        {
            throw new IssuanceException(Describe(ex.Problem), ex.Problem.IsRetryable, ex.Problem.RetryAfter, ex);
        }
        catch (HttpRequestException ex)
        {
            throw new IssuanceException($"cannot reach the ACME directory {_settings.Directory}: {ex.Message}", retryable: true, innerException: ex);
        }
    }

    /// <summary>The CA's renewal window (RFC 9773) when its directory offers renewalInfo; a uniformly random time in it;
    /// ask again after its Retry-After (6 hours when it gives none, at least a minute).</summary>
    public async Task<RenewalAdvice?> GetRenewalAdviceAsync(string chainPem, CancellationToken cancellationToken)
    {
        try
        {
            var directory = await _client.GetDirectoryAsync(cancellationToken);
            if (directory.RenewalInfo is null)
            {
                return null;
            }

            using var leaf = X509Certificate2.CreateFromPem(chainPem);
            var info = await _client.GetRenewalInfoAsync(leaf, cancellationToken);
            var now = _time.GetUtcNow();
            var checkAgain = info.RetryAfter is { } after && after > now + TimeSpan.FromMinutes(1) ? after : now + (info.RetryAfter is null ? TimeSpan.FromHours(6) : TimeSpan.FromMinutes(1));
            return new RenewalAdvice(info.SuggestedWindow.Start, info.SuggestedWindow.End, info.PickRenewalTime(), checkAgain, info.ExplanationUrl);
        }
        catch (AcmeException ex)
        {
            throw new IssuanceException(Describe(ex.Problem), ex.Problem.IsRetryable, ex.Problem.RetryAfter, ex);
        }
        catch (HttpRequestException ex)
        {
            throw new IssuanceException($"cannot reach the ACME directory {_settings.Directory}: {ex.Message}", retryable: true, innerException: ex);
        }
    }

    /// <summary>Revokes a certificate with the account key (RFC 8555 §7.6).</summary>
    public async Task RevokeAsync(X509Certificate2 certificate, AcmeRevocationReason? reason, CancellationToken cancellationToken)
    {
        try
        {
            var session = await GetSessionAsync(cancellationToken);
            await session.RevokeCertificateAsync(certificate, reason, cancellationToken);
        }
        catch (AcmeException ex)
        {
            throw new IssuanceException(Describe(ex.Problem), ex.Problem.IsRetryable, ex.Problem.RetryAfter, ex);
        }
    }

    public void Dispose()
    {
        _session?.Session.Key.Dispose();
        _eab?.Dispose();
        _sessionGate.Dispose();
    }

    /// <summary>The CA's words, with the ACME error type and the identifiers of subproblems; never key material.</summary>
    internal static string Describe(AcmeProblem problem)
    {
        var text = $"{problem.AcmeError ?? problem.Type}: {problem.Detail ?? problem.Title ?? "no detail"}";
        foreach (var sub in problem.Subproblems)
        {
            text += $"; {sub.Identifier?.Value ?? "?"}: {sub.AcmeError ?? sub.Type}: {sub.Detail}";
        }

        return text;
    }

    private async Task<OpenSession> OpenAccountAsync(CancellationToken cancellationToken)
    {
        var key = StoreKeys.AcmeAccount(_settings.Name);
        while (true)
        {
            var entry = await _store.GetAsync(key, cancellationToken);
            if (entry is not null && CoreJson.Deserialize<AcmeAccountRecord>(entry) is var record && record.Directory == _settings.Directory)
            {
                if (record.PendingSealedKey is { } pending && await ResolvePendingKeyAsync(key, entry, record, pending, cancellationToken))
                {
                    continue; // the record changed: read it again
                }

                using var pkcs8 = _cipher.Open(key, record.SealedKey);
                var accountKey = AcmeAccountKey.ImportPkcs8(pkcs8.Span);
                var session = NewSession(accountKey, record.Url);
                if (record.Url is null)
                {
                    await session.EnsureAccountAsync(cancellationToken);
                }

                return new OpenSession(session, entry.ModRevision);
            }

            // No account for this directory yet: make the key, seal it, and store it before registering, so that every
            // instance registers the same key (newAccount with an existing key returns that account).
            using var fresh = AcmeAccountKey.Create(_settings.AccountKeyAlgorithm);
            var sealedKey = SealKey(fresh, key);
            var created = new AcmeAccountRecord(_settings.Directory, sealedKey, _time.GetUtcNow());
            var condition = entry is null ? StoreCondition.Absent(key) : StoreCondition.Unchanged(key, entry.ModRevision);
            await _store.CommitAsync(new StoreTransaction().If(condition).Put(key, CoreJson.Serialize(created)), cancellationToken);
            // Whether this write or another instance's won, the loop reads the stored key.
        }
    }

    /// <summary>A rollover was interrupted (its lock is gone): when the CA knows the pending key, the rollover
    /// happened and the pending key becomes current; otherwise it is dropped. Returns whether the record changed.</summary>
    private async Task<bool> ResolvePendingKeyAsync(string key, StoreEntry entry, AcmeAccountRecord record, byte[] pending, CancellationToken cancellationToken)
    {
        var lockKey = StoreKeys.Lock("acme-account/" + _settings.Name);
        if (await _store.GetAsync(lockKey, cancellationToken) is not null)
        {
            return false; // a rollover is running right now; keep using the current key
        }

        using var pkcs8 = _cipher.Open(key, pending);
        using var pendingKey = AcmeAccountKey.ImportPkcs8(pkcs8.Span);
        var account = await _client.FindAccountAsync(pendingKey, cancellationToken);
        var resolved = account is not null && (record.Url is null || account.Url == record.Url)
            ? record with { SealedKey = pending, PendingSealedKey = null, KeyChanged = _time.GetUtcNow(), Url = account.Url }
            : record with { PendingSealedKey = null };
        await _store.CommitAsync(new StoreTransaction().If(StoreCondition.Absent(lockKey)).If(StoreCondition.Unchanged(key, entry.ModRevision)).Put(key, CoreJson.Serialize(resolved)), cancellationToken);
        return true;
    }

    private AcmeAccountSession NewSession(AcmeAccountKey accountKey, Uri? url)
    {
        if (_settings.EabKeyId is { } kid && _settings.EabHmacKey is { } hmac)
        {
            _eab ??= new AcmeExternalAccountBinding(kid, hmac);
        }

        var registration = new AcmeAccountRegistration { Contact = _settings.Contact, TermsOfServiceAgreed = _settings.AcceptTerms, ExternalAccountBinding = _eab };
        return new AcmeAccountSession(_client, accountKey, registration, url)
        {
            AccountRegistered = async (account, ct) =>
            {
                LogAccountRegistered(_logger, _settings.Name, account.Url.AbsoluteUri);
                await SaveAccountUrlAsync(account.Url, ct);
            },
        };
    }

    private async Task SaveAccountUrlAsync(Uri url, CancellationToken cancellationToken)
    {
        var key = StoreKeys.AcmeAccount(_settings.Name);
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var entry = await _store.GetAsync(key, cancellationToken);
            if (entry is null)
            {
                return;
            }

            var record = CoreJson.Deserialize<AcmeAccountRecord>(entry);
            if (record.Url == url)
            {
                return;
            }

            var result = await _store.CommitAsync(new StoreTransaction().If(StoreCondition.Unchanged(key, entry.ModRevision)).Put(key, CoreJson.Serialize(record with { Url = url })), cancellationToken);
            if (result.Succeeded)
            {
                return;
            }
        }
    }

    private byte[] SealKey(AcmeAccountKey accountKey, string recordKey)
    {
        var pkcs8 = accountKey.ExportPkcs8PrivateKey();
        try
        {
            return _cipher.Seal(recordKey, pkcs8);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(pkcs8);
        }
    }

    /// <summary>How long a rateLimited answer without Retry-After parks the issuer.</summary>
    private static readonly TimeSpan DefaultRateLimitPark = TimeSpan.FromHours(1);

    [LoggerMessage(EventId = 2102, Level = LogLevel.Warning, Message = "ACME issuer {Issuer} is rate limited by its CA; parked until {Until}")]
    private static partial void LogParked(ILogger logger, string issuer, DateTimeOffset until);

    /// <summary>A session and the revision of the account record it was opened from.</summary>
    private sealed record OpenSession(AcmeAccountSession Session, long Revision);

    [LoggerMessage(EventId = 2103, Level = LogLevel.Information, Message = "ACME account of issuer {Issuer} rolled over to a new key: {Url}")]
    private static partial void LogAccountKeyRolledOver(ILogger logger, string issuer, string url);

    [LoggerMessage(EventId = 2104, Level = LogLevel.Warning, Message = "ACME account of issuer {Issuer} deactivated at the CA: {Url}; the next order registers a new account")]
    private static partial void LogAccountDeactivated(ILogger logger, string issuer, string url);

    [LoggerMessage(EventId = 2101, Level = LogLevel.Information, Message = "ACME account of issuer {Issuer} registered: {Url}")]
    private static partial void LogAccountRegistered(ILogger logger, string issuer, string url);
}
