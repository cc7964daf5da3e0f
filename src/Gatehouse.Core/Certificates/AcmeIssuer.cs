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
public sealed record AcmeAccountRecord(Uri Directory, byte[] SealedKey, DateTimeOffset Created, Uri? Url = null);

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
    private AcmeAccountSession? _session;
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

    /// <summary>The account session (registered on first use); exposed for revocation and tests.</summary>
    public async Task<AcmeAccountSession> GetSessionAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _session) is { } ready)
        {
            return ready;
        }

        await _sessionGate.WaitAsync(cancellationToken);
        try
        {
            return _session ??= await OpenAccountAsync(cancellationToken);
        }
        finally
        {
            _sessionGate.Release();
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
        _session?.Key.Dispose();
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

    private async Task<AcmeAccountSession> OpenAccountAsync(CancellationToken cancellationToken)
    {
        var key = StoreKeys.AcmeAccount(_settings.Name);
        while (true)
        {
            var entry = await _store.GetAsync(key, cancellationToken);
            if (entry is not null && CoreJson.Deserialize<AcmeAccountRecord>(entry) is var record && record.Directory == _settings.Directory)
            {
                using var pkcs8 = _cipher.Open(key, record.SealedKey);
                var accountKey = AcmeAccountKey.ImportPkcs8(pkcs8.Span);
                var session = NewSession(accountKey, record.Url);
                if (record.Url is null)
                {
                    await session.EnsureAccountAsync(cancellationToken);
                }

                return session;
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

    [LoggerMessage(EventId = 2101, Level = LogLevel.Information, Message = "ACME account of issuer {Issuer} registered: {Url}")]
    private static partial void LogAccountRegistered(ILogger logger, string issuer, string url);
}
