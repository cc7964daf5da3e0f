using System.Buffers.Text;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gatehouse.Acme;

/// <summary>How an <see cref="AcmeClient"/> behaves.</summary>
public sealed record AcmeClientOptions
{
    /// <summary>How many times a request refused with <c>badNonce</c> is sent again (with the nonce the refusal
    /// carried) before the refusal is thrown. Ten keeps a request alive through a CA that refuses half of all nonces
    /// (one in 2,048 would still fail), without hiding a CA that refuses every nonce.</summary>
    public int BadNonceRetries { get; init; } = 10;

    /// <summary>The first wait when polling without <c>Retry-After</c>; doubled after each poll up to
    /// <see cref="MaxPollDelay"/>.</summary>
    public TimeSpan FirstPollDelay { get; init; } = TimeSpan.FromMilliseconds(10);

    public TimeSpan MaxPollDelay { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Sent on every request (RFC 8555 §6.1 asks clients to identify themselves).</summary>
    public string UserAgent { get; init; } = "Gatehouse-ACME/1.0";

    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    public ILogger Logger { get; init; } = NullLogger.Instance;
}

/// <summary>
/// An RFC 8555 client for one ACME server (one directory URL). It fetches the directory once, shares one nonce pool
/// between all requests, signs requests (JWS), retries <c>badNonce</c> refusals, and turns every failure into an
/// <see cref="AcmeException"/> whose <see cref="AcmeProblem"/> says whether retrying can help. Safe to use
/// concurrently. Requests that need an account go through an <see cref="AcmeAccountSession"/>.
/// </summary>
/// <remarks>The <see cref="HttpClient"/> is the caller's (it decides TLS trust, e.g. a private CA's bundle, proxies
/// and timeouts) and is not disposed here. Its timeout becomes a retryable <see cref="AcmeProblem.TransportType"/>
/// problem; the caller's cancellation token cancels.</remarks>
public sealed class AcmeClient
{
    private const string JoseContentType = "application/jose+json";
    internal const string PemChainContentType = "application/pem-certificate-chain";

    private readonly HttpClient _http;
    private readonly AcmeNoncePool _nonces = new();
    private Task<AcmeDirectory>? _directory;

    public AcmeClient(HttpClient http, Uri directoryUrl, AcmeClientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(directoryUrl);
        _http = http;
        DirectoryUrl = directoryUrl;
        Options = options ?? new AcmeClientOptions();
    }

    public Uri DirectoryUrl { get; }

    public AcmeClientOptions Options { get; }

    internal TimeProvider Time => Options.TimeProvider;

    internal ILogger Logger => Options.Logger;

    /// <summary>The directory, fetched on first use and kept (RFC 8555 §7.1.1). Concurrent first callers share one
    /// fetch; a failed fetch is not kept.</summary>
    public Task<AcmeDirectory> GetDirectoryAsync(CancellationToken cancellationToken)
    {
        var fetch = Volatile.Read(ref _directory);
        if (fetch is null || fetch.IsFaulted || fetch.IsCanceled)
        {
            // Shared by every caller, so no caller's token cancels it; the HttpClient's timeout bounds it.
            var fresh = FetchDirectoryAsync();
            fetch = Interlocked.CompareExchange(ref _directory, fresh, fetch) == fetch ? fresh : Volatile.Read(ref _directory)!;
        }

        return fetch.IsCompletedSuccessfully ? fetch : fetch.WaitAsync(cancellationToken);
    }

    /// <summary>
    /// Registers <paramref name="key"/> (RFC 8555 §7.3): a new account, or the existing one when the key already has
    /// one (the server answers with it). External account binding is added when the registration has it.
    /// </summary>
    public async Task<AcmeAccount> CreateAccountAsync(AcmeAccountKey key, AcmeAccountRegistration registration, CancellationToken cancellationToken)
    {
        var directory = await GetDirectoryAsync(cancellationToken);
        var payload = new NewAccountPayload(
            registration.Contact.Count > 0 ? registration.Contact : null,
            registration.TermsOfServiceAgreed ? true : null,
            null,
            registration.ExternalAccountBinding is { } binding ? Jws.ExternalAccountBinding(binding, key, directory.NewAccount) : null);
        var response = await PostAsync("newAccount", directory.NewAccount, key, null, Serialize(payload, AcmeJson.Default.NewAccountPayload), cancellationToken);
        var account = ReadAccount(response);
        AcmeLog.AccountRegistered(Logger, account.Url, response.Status == HttpStatusCode.Created);
        return account;
    }

    /// <summary>The account of <paramref name="key"/> (newAccount with <c>onlyReturnExisting</c>, RFC 8555 §7.3.1),
    /// or null when the server has none.</summary>
    public async Task<AcmeAccount?> FindAccountAsync(AcmeAccountKey key, CancellationToken cancellationToken)
    {
        var directory = await GetDirectoryAsync(cancellationToken);
        try
        {
            var payload = Serialize(new NewAccountPayload(null, null, true, null), AcmeJson.Default.NewAccountPayload);
            return ReadAccount(await PostAsync("findAccount", directory.NewAccount, key, null, payload, cancellationToken));
        }
        catch (AcmeException ex) when (ex.Problem.Is(AcmeErrors.AccountDoesNotExist))
        {
            return null;
        }
    }

    /// <summary>
    /// Revokes <paramref name="certificate"/> with a request signed by the certificate's own key (RFC 8555 §7.6, the
    /// <c>jwk</c> form): proof of the key instead of an account. To revoke as the issuing account use
    /// <see cref="AcmeAccountSession.RevokeCertificateAsync"/>.
    /// </summary>
    public async Task RevokeCertificateAsync(X509Certificate2 certificate, AsymmetricAlgorithm certificateKey, AcmeRevocationReason? reason, CancellationToken cancellationToken)
    {
        using var signer = AcmeAccountKey.FromKey(certificateKey);
        await RevokeAsync(certificate, reason, signer, null, cancellationToken);
    }

    /// <summary>
    /// The CA's renewal suggestion for the certificate with ARI identifier <paramref name="certificateId"/>
    /// (<see cref="AcmeCertificateId"/>; RFC 9773 §4.2): an unauthenticated GET of renewalInfo/ID.
    /// </summary>
    /// <exception cref="InvalidOperationException">The CA does not offer renewal information
    /// (<see cref="AcmeDirectory.RenewalInfo"/> is null).</exception>
    public async Task<AcmeRenewalInfo> GetRenewalInfoAsync(string certificateId, CancellationToken cancellationToken)
    {
        var directory = await GetDirectoryAsync(cancellationToken);
        var baseUrl = directory.RenewalInfo
            ?? throw new InvalidOperationException($"The ACME server at {DirectoryUrl} does not offer renewal information (no renewalInfo in its directory).");
        var url = new Uri(baseUrl.AbsoluteUri.TrimEnd('/') + "/" + Uri.EscapeDataString(certificateId));
        var response = await GetAsync("renewalInfo", url, cancellationToken);
        var info = Read(response, AcmeJson.Default.AcmeRenewalInfo, "renewal information");
        if (info.SuggestedWindow.End < info.SuggestedWindow.Start)
        {
            throw Invalid("renewal information", "its suggested window ends before it starts");
        }

        return info with { RetryAfter = response.RetryAfter is { } delay ? Time.GetUtcNow() + delay : null };
    }

    /// <summary>The renewal suggestion for <paramref name="certificate"/>.</summary>
    public Task<AcmeRenewalInfo> GetRenewalInfoAsync(X509Certificate2 certificate, CancellationToken cancellationToken) =>
        GetRenewalInfoAsync(AcmeCertificateId.Compute(certificate), cancellationToken);

    internal async Task RevokeAsync(X509Certificate2 certificate, AcmeRevocationReason? reason, AcmeAccountKey signer, Uri? accountUrl, CancellationToken cancellationToken)
    {
        var directory = await GetDirectoryAsync(cancellationToken);
        var url = directory.RevokeCert ?? throw new InvalidOperationException($"The ACME server at {DirectoryUrl} does not offer revocation.");
        var payload = new RevocationPayload(Base64Url.EncodeToString(certificate.RawData), (int?)reason);
        await PostAsync("revokeCert", url, signer, accountUrl, Serialize(payload, AcmeJson.Default.RevocationPayload), cancellationToken);
        AcmeLog.Revoked(Logger, certificate.SerialNumber, reason?.ToString() ?? "none", accountUrl is null ? "certificate key" : "account key");
    }

    /// <summary>A signed POST (or POST-as-GET when <paramref name="payload"/> is null) of <paramref name="key"/>,
    /// with <c>kid</c> <paramref name="accountUrl"/> or, when null, the <c>jwk</c>.</summary>
    internal Task<AcmeResponse> PostAsync(string operation, Uri url, AcmeAccountKey key, Uri? accountUrl, byte[]? payload, CancellationToken cancellationToken, string? accept = null) =>
        PostAsync(operation, url, nonce => Jws.Sign(key, url, nonce, accountUrl, payload), cancellationToken, accept);

    /// <summary>
    /// Sends a JWS made by <paramref name="sign"/> for a nonce. A <c>badNonce</c> refusal is retried, up to
    /// <see cref="AcmeClientOptions.BadNonceRetries"/> times, with the nonce that refusal carried (RFC 8555 §6.5);
    /// every other failure is thrown.
    /// </summary>
    internal async Task<AcmeResponse> PostAsync(string operation, Uri url, Func<string, FlattenedJws> sign, CancellationToken cancellationToken, string? accept = null)
    {
        string? nonce = null;
        for (var attempt = 0; ; attempt++)
        {
            nonce ??= await TakeNonceAsync(cancellationToken);
            var body = JsonSerializer.SerializeToUtf8Bytes(sign(nonce), AcmeJson.Default.FlattenedJws);
            using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue(JoseContentType);
            if (accept is not null)
            {
                request.Headers.Accept.ParseAdd(accept);
            }

            var response = await SendCoreAsync(operation, request, cancellationToken);
            if (response.IsSuccess)
            {
                AddNonce(response.Nonce);
                return response;
            }

            var problem = ProblemOf(operation, response);
            if (problem.Is(AcmeErrors.BadNonce) && attempt < Options.BadNonceRetries)
            {
                // The refusal's own nonce is fresh; it skips the pool so that no other request takes it first.
                AcmeDiagnostics.BadNonceRetries.Add(1);
                AcmeLog.BadNonceRetry(Logger, operation, attempt + 1);
                nonce = response.Nonce;
                continue;
            }

            AddNonce(response.Nonce);
            throw new AcmeException(problem);
        }
    }

    /// <summary>An unsigned GET; a failure is thrown.</summary>
    internal async Task<AcmeResponse> GetAsync(string operation, Uri url, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        var response = await SendCoreAsync(operation, request, cancellationToken);
        AddNonce(response.Nonce);
        return response.IsSuccess ? response : throw new AcmeException(ProblemOf(operation, response));
    }

    /// <summary>Sends <paramref name="request"/> and reads the whole response, whatever its status. Only a transport
    /// failure or a timeout throws (a retryable <see cref="AcmeProblem.TransportType"/>); cancellation cancels.</summary>
    private async Task<AcmeResponse> SendCoreAsync(string operation, HttpRequestMessage request, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        request.Headers.UserAgent.ParseAdd(Options.UserAgent);
        using var activity = AcmeDiagnostics.Source.StartActivity("acme " + operation, ActivityKind.Client);
        activity?.SetTag("acme.operation", operation);
        activity?.SetTag("url.full", request.RequestUri?.AbsoluteUri);
        var started = Stopwatch.GetTimestamp();
        try
        {
            using var message = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken);
            var body = await message.Content.ReadAsByteArrayAsync(cancellationToken);
            var response = new AcmeResponse(message, body, Time.GetUtcNow());
            AcmeDiagnostics.Record(operation, (int)message.StatusCode, started);
            activity?.SetTag("http.response.status_code", (int)message.StatusCode);
            if (!response.IsSuccess)
            {
                activity?.SetStatus(ActivityStatusCode.Error);
            }

            return response;
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            AcmeDiagnostics.Record(operation, 0, started);
            activity?.SetStatus(ActivityStatusCode.Error, "transport");
            var detail = ex is OperationCanceledException ? $"{request.RequestUri} did not answer in time" : $"{request.RequestUri}: {ex.Message}";
            AcmeLog.TransportFailed(Logger, operation, detail);
            throw new AcmeException(new AcmeProblem { Type = AcmeProblem.TransportType, Title = "The ACME server could not be reached", Detail = detail }, ex);
        }
    }

    private async Task<AcmeDirectory> FetchDirectoryAsync()
    {
        await Task.Yield();
        var response = await GetAsync("directory", DirectoryUrl, CancellationToken.None);
        return Read(response, AcmeJson.Default.AcmeDirectory, "directory");
    }

    internal static byte[] Serialize<T>(T value, JsonTypeInfo<T> type) => JsonSerializer.SerializeToUtf8Bytes(value, type);

    /// <summary>Reads a JSON resource; an unreadable body is a retryable <see cref="AcmeProblem.InvalidResponseType"/>.</summary>
    internal static T Read<T>(AcmeResponse response, JsonTypeInfo<T> type, string what)
    {
        try
        {
            return JsonSerializer.Deserialize(response.Body, type) ?? throw Invalid(what, "it is null");
        }
        catch (JsonException ex)
        {
            throw Invalid(what, ex.Message);
        }
    }

    internal static AcmeException Invalid(string what, string why) => new(new AcmeProblem
    {
        Type = AcmeProblem.InvalidResponseType,
        Title = "The ACME server's answer cannot be used",
        Detail = $"The {what} the server sent is not valid: {why}",
    });

    internal static Uri LocationOf(AcmeResponse response, string what) =>
        response.Location ?? throw Invalid(what, "the response has no Location header");

    private static AcmeAccount ReadAccount(AcmeResponse response) =>
        Read(response, AcmeJson.Default.AcmeAccount, "account") with { Url = LocationOf(response, "account") };

    private AcmeProblem ProblemOf(string operation, AcmeResponse response)
    {
        var retryAfter = response.RetryAfter is { } delay ? Time.GetUtcNow() + delay : (DateTimeOffset?)null;
        var problem = AcmeProblem.TryParse(response.Body, out var document)
            ? document with { Status = document.Status ?? (int)response.Status, RetryAfter = retryAfter }
            : new AcmeProblem
            {
                Status = (int)response.Status,
                Title = $"HTTP {(int)response.Status} {response.Status}",
                Detail = $"{response.RequestUrl} answered {(int)response.Status} without a problem document ({response.ContentType ?? "no content type"})",
                RetryAfter = retryAfter,
            };
        AcmeDiagnostics.Problems.Add(1, new KeyValuePair<string, object?>("acme.error", problem.AcmeError ?? problem.Type));
        AcmeLog.Refused(Logger, operation, problem.ToString());
        return problem;
    }

    private async Task<string> TakeNonceAsync(CancellationToken cancellationToken)
    {
        if (_nonces.TryTake(out var pooled))
        {
            return pooled;
        }

        // RFC 8555 §7.2: HEAD newNonce. The nonce goes straight to the caller, not through the pool.
        var directory = await GetDirectoryAsync(cancellationToken);
        using var request = new HttpRequestMessage(HttpMethod.Head, directory.NewNonce);
        var response = await SendCoreAsync("newNonce", request, cancellationToken);
        return response.Nonce
            ?? throw (response.IsSuccess
                ? Invalid("newNonce response", "it has no valid Replay-Nonce header")
                : new AcmeException(ProblemOf("newNonce", response)));
    }

    private void AddNonce(string? nonce)
    {
        if (nonce is not null)
        {
            _nonces.Add(nonce);
        }
    }
}

/// <summary>The revocation reasons of RFC 5280 §5.3.1 (the ACME <c>reason</c> field, RFC 8555 §7.6).</summary>
public enum AcmeRevocationReason
{
    Unspecified = 0,
    KeyCompromise = 1,
    CaCompromise = 2,
    AffiliationChanged = 3,
    Superseded = 4,
    CessationOfOperation = 5,
    CertificateHold = 6,
    RemoveFromCrl = 8,
    PrivilegeWithdrawn = 9,
    AaCompromise = 10,
}

/// <summary>A successful or refused response, read whole: what the protocol needs of it.</summary>
internal sealed class AcmeResponse
{
    private static readonly System.Buffers.SearchValues<char> Base64UrlAlphabet =
        System.Buffers.SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");

    public AcmeResponse(HttpResponseMessage message, byte[] body, DateTimeOffset now)
    {
        Status = message.StatusCode;
        RequestUrl = message.RequestMessage?.RequestUri ?? new Uri("about:blank");
        Body = body;
        ContentType = message.Content.Headers.ContentType?.MediaType;
        Location = message.Headers.Location is { } location ? new Uri(RequestUrl, location) : null;
        if (message.Headers.TryGetValues("Replay-Nonce", out var nonces))
        {
            // RFC 8555 §6.5.1: a nonce is base64url; anything else is ignored.
            Nonce = nonces.FirstOrDefault(n => n.Length > 0 && !n.AsSpan().ContainsAnyExcept(Base64UrlAlphabet));
        }

        if (message.Headers.TryGetValues("Retry-After", out var retryAfter)
            && AcmeHttpHeaders.TryParseRetryAfter(retryAfter.First(), now, out var delay))
        {
            RetryAfter = delay;
        }

        Links = message.Headers.TryGetValues("Link", out var links) ? AcmeHttpHeaders.ParseLinks(links, RequestUrl) : [];
    }

    public HttpStatusCode Status { get; }

    public bool IsSuccess => (int)Status is >= 200 and < 300;

    public Uri RequestUrl { get; }

    public byte[] Body { get; }

    public string? ContentType { get; }

    public Uri? Location { get; }

    public string? Nonce { get; }

    public TimeSpan? RetryAfter { get; }

    public IReadOnlyList<AcmeLink> Links { get; }
}
