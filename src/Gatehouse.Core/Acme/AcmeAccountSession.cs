using System.Diagnostics;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Serialization.Metadata;

namespace Gatehouse.Acme;

/// <summary>
/// Everything an ACME account does (RFC 8555 §7.3–§7.6): account management, orders, authorizations, challenges,
/// finalization, download and revocation, plus <see cref="IssueCertificateAsync"/> that runs a whole issuance.
/// </summary>
/// <remarks>
/// <para>Requests are signed with <see cref="Key"/> and name the account by <see cref="AccountUrl"/> (<c>kid</c>).
/// Without a URL the first request registers the key (newAccount answers with the existing account when the key
/// has one). When the CA answers <c>accountDoesNotExist</c> (it forgot the account, e.g. a test CA restarted) and
/// <see cref="ReRegisterWhenForgotten"/> is on, the session registers the same key again with
/// <see cref="Registration"/>, reports the new account through <see cref="AccountRegistered"/>, and sends the
/// failed request once more. Objects of the forgotten account (orders, authorizations) are gone with it; an issuance
/// that was under way fails and is started again by its caller.</para>
/// <para>Safe to use concurrently, except <see cref="ChangeKeyAsync"/>, which must not overlap other requests. The
/// session owns neither the keys nor the EAB credentials; they must outlive it.</para>
/// </remarks>
public sealed class AcmeAccountSession
{
    private static readonly TimeSpan CleanupTimeout = TimeSpan.FromSeconds(30);
    private static readonly byte[] EmptyObject = "{}"u8.ToArray();

    private readonly Lock _registrationGate = new();
    private Task<Uri>? _registration;
    private AcmeAccountKey _key;
    private Uri? _accountUrl;

    public AcmeAccountSession(AcmeClient client, AcmeAccountKey key, AcmeAccountRegistration registration, Uri? accountUrl = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(registration);
        Client = client;
        _key = key;
        Registration = registration;
        _accountUrl = accountUrl;
    }

    public AcmeClient Client { get; }

    /// <summary>The account key; replaced by <see cref="ChangeKeyAsync"/>.</summary>
    public AcmeAccountKey Key => Volatile.Read(ref _key);

    /// <summary>The account URL, null until the key is registered; replaced when the account is registered again.</summary>
    public Uri? AccountUrl => Volatile.Read(ref _accountUrl);

    /// <summary>What the key is registered with, the first time and again after the CA forgot the account.</summary>
    public AcmeAccountRegistration Registration { get; }

    /// <summary>Register the key again and retry once when the CA answers <c>accountDoesNotExist</c> (default on).</summary>
    public bool ReRegisterWhenForgotten { get; init; } = true;

    /// <summary>Called after each registration this session makes (the first, and after the CA forgot the account),
    /// e.g. to store the new account URL.</summary>
    public Func<AcmeAccount, CancellationToken, Task>? AccountRegistered { get; init; }

    /// <summary>Registers the key (or finds its account) unless the session already has an account URL; returns the URL.</summary>
    public async Task<Uri> EnsureAccountAsync(CancellationToken cancellationToken) =>
        AccountUrl ?? await RegisterAsync(null, cancellationToken);

    /// <summary>The account as the CA has it now (POST-as-GET of the account URL).</summary>
    public Task<AcmeAccount> GetAccountAsync(CancellationToken cancellationToken) =>
        AccountRequestAsync("account", null, cancellationToken);

    /// <summary>Replaces the account's contact URLs (RFC 8555 §7.3.2).</summary>
    public async Task<AcmeAccount> UpdateContactAsync(IReadOnlyList<string> contact, CancellationToken cancellationToken)
    {
        var account = await AccountRequestAsync("updateAccount", AcmeClient.Serialize(new ContactUpdatePayload(contact), AcmeJson.Default.ContactUpdatePayload), cancellationToken);
        AcmeLog.AccountChanged(Client.Logger, account.Url, "contact updated");
        return account;
    }

    /// <summary>Deactivates the account (RFC 8555 §7.3.6); the CA refuses its requests afterwards.</summary>
    public async Task<AcmeAccount> DeactivateAsync(CancellationToken cancellationToken)
    {
        var account = await AccountRequestAsync("deactivateAccount", AcmeClient.Serialize(new DeactivationPayload(), AcmeJson.Default.DeactivationPayload), cancellationToken);
        AcmeLog.AccountChanged(Client.Logger, account.Url, "deactivated");
        return account;
    }

    /// <summary>
    /// Rolls the account over to <paramref name="newKey"/> (RFC 8555 §7.3.5): an inner JWS signed by the new key
    /// (<c>jwk</c>, no nonce) over {account, oldKey}, inside a request signed by the old key. The session signs with
    /// the new key afterwards; the old key is refused by the CA. Must not overlap other requests of this session.
    /// </summary>
    public async Task<AcmeAccount> ChangeKeyAsync(AcmeAccountKey newKey, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(newKey);
        var directory = await Client.GetDirectoryAsync(cancellationToken);
        var url = directory.KeyChange ?? throw new InvalidOperationException($"The ACME server at {Client.DirectoryUrl} does not offer key rollover.");
        await WithAccountAsync(
            async (key, accountUrl) =>
            {
                var inner = Jws.Sign(newKey, url, null, null, AcmeClient.Serialize(new KeyChangePayload(accountUrl.AbsoluteUri, key.Jwk), AcmeJson.Default.KeyChangePayload));
                var innerJson = AcmeClient.Serialize(inner, AcmeJson.Default.FlattenedJws);
                return await Client.PostAsync("keyChange", url, nonce => Jws.Sign(key, url, nonce, accountUrl, innerJson), cancellationToken);
            },
            cancellationToken);
        Volatile.Write(ref _key, newKey);
        var account = await GetAccountAsync(cancellationToken);
        AcmeLog.AccountChanged(Client.Logger, account.Url, "key rolled over");
        return account;
    }

    /// <summary>
    /// Creates an order (RFC 8555 §7.4). <see cref="AcmeOrderRequest.Replaces"/> is sent only when the CA offers
    /// renewal information; a <see cref="AcmeOrderRequest.Profile"/> the CA does not list is refused here
    /// (<see cref="AcmeProblem.ProfileNotOfferedType"/>).
    /// </summary>
    public async Task<AcmeOrder> CreateOrderAsync(AcmeOrderRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Identifiers.Count == 0)
        {
            throw new ArgumentException("An order needs at least one identifier.", nameof(request));
        }

        var directory = await Client.GetDirectoryAsync(cancellationToken);
        if (request.Profile is { } profile && !directory.Meta.Profiles.ContainsKey(profile))
        {
            throw new AcmeException(new AcmeProblem
            {
                Type = AcmeProblem.ProfileNotOfferedType,
                Title = "The CA does not offer this profile",
                Detail = directory.Meta.Profiles.Count == 0
                    ? $"The order asks for profile '{profile}', but {Client.DirectoryUrl} offers no profiles."
                    : $"The order asks for profile '{profile}'; {Client.DirectoryUrl} offers {string.Join(", ", directory.Meta.Profiles.Keys)}.",
            });
        }

        var payload = AcmeClient.Serialize(
            new NewOrderPayload(request.Identifiers, request.NotBefore, request.NotAfter, directory.RenewalInfo is null ? null : request.Replaces, request.Profile),
            AcmeJson.Default.NewOrderPayload);
        var response = await WithAccountAsync((key, accountUrl) => Client.PostAsync("newOrder", directory.NewOrder, key, accountUrl, payload, cancellationToken), cancellationToken);
        return ReadOrder(response, AcmeClient.LocationOf(response, "order"));
    }

    public async Task<AcmeOrder> GetOrderAsync(Uri orderUrl, CancellationToken cancellationToken) =>
        ReadOrder(await PostAsGetAsync("order", orderUrl, cancellationToken), orderUrl);

    public async Task<AcmeAuthorization> GetAuthorizationAsync(Uri authorizationUrl, CancellationToken cancellationToken) =>
        ReadAuthorization(await PostAsGetAsync("authorization", authorizationUrl, cancellationToken), authorizationUrl);

    /// <summary>Deactivates an authorization (RFC 8555 §7.5.2), e.g. one a failed order leaves pending.</summary>
    public async Task<AcmeAuthorization> DeactivateAuthorizationAsync(Uri authorizationUrl, CancellationToken cancellationToken)
    {
        var payload = AcmeClient.Serialize(new DeactivationPayload(), AcmeJson.Default.DeactivationPayload);
        var response = await WithAccountAsync((key, accountUrl) => Client.PostAsync("deactivateAuthorization", authorizationUrl, key, accountUrl, payload, cancellationToken), cancellationToken);
        return ReadAuthorization(response, authorizationUrl);
    }

    /// <summary>What a solver publishes for <paramref name="challenge"/> of <paramref name="authorization"/>: the key
    /// authorization under this session's key.</summary>
    public AcmeChallengeAnswer AnswerFor(AcmeAuthorization authorization, AcmeChallenge challenge)
    {
        if (string.IsNullOrEmpty(challenge.Token))
        {
            throw new ArgumentException($"The {challenge.Type} challenge has no token.", nameof(challenge));
        }

        return new AcmeChallengeAnswer
        {
            Authorization = authorization,
            Challenge = challenge,
            KeyAuthorization = AcmeKeyAuthorization.Compute(challenge.Token, Key),
        };
    }

    /// <summary>Tells the CA the answer is in place and it may validate (RFC 8555 §7.5.1: POST <c>{}</c>).</summary>
    public async Task<AcmeChallenge> RespondToChallengeAsync(AcmeChallenge challenge, CancellationToken cancellationToken)
    {
        var response = await WithAccountAsync((key, accountUrl) => Client.PostAsync("challenge", challenge.Url, key, accountUrl, EmptyObject, cancellationToken), cancellationToken);
        return AcmeClient.Read(response, AcmeJson.Default.AcmeChallenge, "challenge");
    }

    /// <summary>Polls an authorization until it is no longer pending (valid, invalid, …): see <see cref="AcmeClientOptions.FirstPollDelay"/>.</summary>
    public Task<AcmeAuthorization> WaitForAuthorizationAsync(Uri authorizationUrl, CancellationToken cancellationToken) =>
        PollAsync("authorization", authorizationUrl, TimeSpan.Zero, ReadAuthorization, a => a.Status != AcmeAuthorizationStatus.Pending, cancellationToken);

    /// <summary>
    /// Polls an order until it is neither pending nor processing (ready, valid or invalid). Waits honour
    /// <c>Retry-After</c>; without it they start at <see cref="AcmeClientOptions.FirstPollDelay"/> and double up to
    /// <see cref="AcmeClientOptions.MaxPollDelay"/>. The token sets the deadline.
    /// </summary>
    public Task<AcmeOrder> WaitForOrderAsync(Uri orderUrl, CancellationToken cancellationToken) =>
        WaitForOrderAsync(orderUrl, TimeSpan.Zero, cancellationToken);

    /// <summary>
    /// Finalizes <paramref name="order"/> with <paramref name="csrDer"/> (RFC 8555 §7.4; see <see cref="AcmeCsr"/>) and
    /// waits until it is valid. A pending order is waited for first.
    /// </summary>
    /// <exception cref="AcmeException">The order is or became invalid (its error), or the CA refused the CSR.</exception>
    public async Task<AcmeOrder> FinalizeAsync(AcmeOrder order, byte[] csrDer, CancellationToken cancellationToken)
    {
        if (order.Status == AcmeOrderStatus.Pending)
        {
            order = await WaitForOrderAsync(order.Url, Client.Options.FirstPollDelay, cancellationToken);
        }

        if (order.Status == AcmeOrderStatus.Ready)
        {
            var payload = AcmeClient.Serialize(new FinalizePayload(System.Buffers.Text.Base64Url.EncodeToString(csrDer)), AcmeJson.Default.FinalizePayload);
            var response = await WithAccountAsync((key, accountUrl) => Client.PostAsync("finalize", order.Finalize, key, accountUrl, payload, cancellationToken), cancellationToken);
            order = ReadOrder(response, order.Url);
        }

        if (order.Status == AcmeOrderStatus.Processing)
        {
            order = await WaitForOrderAsync(order.Url, Client.Options.FirstPollDelay, cancellationToken);
        }

        return order.Status switch
        {
            AcmeOrderStatus.Valid when order.Certificate is not null => order,
            AcmeOrderStatus.Valid => throw AcmeClient.Invalid("order", "it is valid but names no certificate"),
            _ => throw new AcmeException(order.Error ?? new AcmeProblem
            {
                Type = AcmeProblem.AcmeErrorPrefix + AcmeErrors.OrderNotReady,
                Title = "The order cannot be finalized",
                Detail = $"Order {order.Url} is {order.Status.ToString().ToLowerInvariant()}",
            }),
        };
    }

    /// <summary>
    /// Downloads the certificate of a valid order (RFC 8555 §7.4.2). With <paramref name="preferredIssuer"/>, the
    /// first chain (default, then the <c>alternate</c> links in order) whose root issuer has that common name is
    /// returned; when none has, the default chain.
    /// </summary>
    public async Task<AcmeCertificateChain> DownloadCertificateAsync(AcmeOrder order, string? preferredIssuer, CancellationToken cancellationToken)
    {
        var url = order.Certificate ?? throw new ArgumentException($"Order {order.Url} has no certificate (status {order.Status}).", nameof(order));
        var chain = await DownloadChainAsync(url, cancellationToken);
        if (preferredIssuer is null || chain.ChainsTo(preferredIssuer))
        {
            return chain;
        }

        foreach (var alternateUrl in chain.AlternateUrls)
        {
            var alternate = await DownloadChainAsync(alternateUrl, cancellationToken);
            if (alternate.ChainsTo(preferredIssuer))
            {
                return alternate;
            }
        }

        AcmeLog.PreferredChainMissing(Client.Logger, url, preferredIssuer, chain.RootIssuerName);
        return chain;
    }

    /// <summary>Revokes a certificate of this account (RFC 8555 §7.6, signed by the account key).</summary>
    public Task RevokeCertificateAsync(X509Certificate2 certificate, AcmeRevocationReason? reason, CancellationToken cancellationToken) =>
        WithAccountAsync(
            async (key, accountUrl) =>
            {
                await Client.RevokeAsync(certificate, reason, key, accountUrl, cancellationToken);
                return true;
            },
            cancellationToken);

    /// <summary>
    /// Issues a certificate: creates the order, has <paramref name="solvers"/> answer every pending authorization
    /// (published concurrently, then all challenges answered, then the order polled), cleans the answers up,
    /// finalizes with <paramref name="csrDer"/>, and downloads the chain (<paramref name="preferredIssuer"/>: see
    /// <see cref="DownloadCertificateAsync"/>).
    /// </summary>
    /// <exception cref="AcmeException">A refusal or a failed validation. A failed validation carries the challenge
    /// errors, with their identifiers (several as subproblems of a <c>compound</c> problem).</exception>
    public async Task<AcmeCertificateChain> IssueCertificateAsync(
        AcmeOrderRequest request, byte[] csrDer, IReadOnlyList<IAcmeChallengeSolver> solvers, string? preferredIssuer, CancellationToken cancellationToken)
    {
        using var activity = AcmeDiagnostics.Source.StartActivity("acme issue");
        var started = Stopwatch.GetTimestamp();
        var order = await CreateOrderAsync(request, cancellationToken);
        activity?.SetTag("acme.order", order.Url.AbsoluteUri);
        if (order.Status == AcmeOrderStatus.Pending)
        {
            order = await AuthorizeAsync(order, solvers, cancellationToken);
        }

        order = await FinalizeAsync(order, csrDer, cancellationToken);
        var chain = await DownloadCertificateAsync(order, preferredIssuer, cancellationToken);
        AcmeDiagnostics.Issued.Add(1);
        AcmeLog.Issued(Client.Logger, order.Url, string.Join(", ", request.Identifiers.Select(i => i.Value)), chain.SerialNumber, Stopwatch.GetElapsedTime(started).TotalSeconds);
        return chain;
    }

    private async Task<AcmeOrder> AuthorizeAsync(AcmeOrder order, IReadOnlyList<IAcmeChallengeSolver> solvers, CancellationToken cancellationToken)
    {
        var authorizations = await Task.WhenAll(order.Authorizations.Select(url => GetAuthorizationAsync(url, cancellationToken)));
        var work = new List<(IAcmeChallengeSolver Solver, AcmeChallengeAnswer Answer)>();
        foreach (var authorization in authorizations.Where(a => a.Status == AcmeAuthorizationStatus.Pending))
        {
            work.Add(ChooseSolver(authorization, solvers));
        }

        var started = new List<(IAcmeChallengeSolver Solver, AcmeChallengeAnswer Answer)>();
        try
        {
            await Task.WhenAll(work.Select(item =>
            {
                lock (started)
                {
                    started.Add(item);
                }

                return item.Solver.PrepareAsync(item.Answer, cancellationToken);
            }));
            await Task.WhenAll(work.Select(item => RespondToChallengeAsync(item.Answer.Challenge, cancellationToken)));
            var authorized = await WaitForOrderAsync(order.Url, Client.Options.FirstPollDelay, cancellationToken);
            if (authorized.Status == AcmeOrderStatus.Invalid)
            {
                throw new AcmeException(await ValidationFailureAsync(authorized, work.Select(w => w.Answer), cancellationToken));
            }

            return authorized;
        }
        finally
        {
            await CleanupAsync(started);
        }
    }

    private (IAcmeChallengeSolver, AcmeChallengeAnswer) ChooseSolver(AcmeAuthorization authorization, IReadOnlyList<IAcmeChallengeSolver> solvers)
    {
        foreach (var solver in solvers)
        {
            if (authorization.FindChallenge(solver.ChallengeType) is { } challenge)
            {
                return (solver, AnswerFor(authorization, challenge));
            }
        }

        throw new AcmeException(new AcmeProblem
        {
            Type = AcmeProblem.NoUsableChallengeType,
            Title = "No solver can answer this authorization",
            Detail = $"{authorization.Identifier}{(authorization.Wildcard ? " (wildcard)" : "")} offers {string.Join(", ", authorization.Challenges.Select(c => c.Type))}; "
                + $"the solvers answer {string.Join(", ", solvers.Select(s => s.ChallengeType))}",
            Identifier = authorization.Identifier,
        });
    }

    private async Task CleanupAsync(List<(IAcmeChallengeSolver Solver, AcmeChallengeAnswer Answer)> started)
    {
        // Cleanup runs even when the issuance was cancelled, bounded by its own timeout.
        using var timeout = new CancellationTokenSource(CleanupTimeout, Client.Time);
        await Task.WhenAll(started.Select(async item =>
        {
            try
            {
                await item.Solver.CleanupAsync(item.Answer, timeout.Token);
            }
            catch (Exception ex)
            {
                AcmeLog.CleanupFailed(Client.Logger, item.Solver.ChallengeType, item.Answer.Identifier.ToString(), ex.Message);
            }
        }));
    }

    /// <summary>The challenge errors of the authorizations that failed, with their identifiers; the order's error
    /// when the CA gave none.</summary>
    private async Task<AcmeProblem> ValidationFailureAsync(AcmeOrder order, IEnumerable<AcmeChallengeAnswer> answers, CancellationToken cancellationToken)
    {
        var failures = new List<AcmeProblem>();
        foreach (var answer in answers)
        {
            var authorization = await GetAuthorizationAsync(answer.Authorization.Url, cancellationToken);
            if (authorization.Status == AcmeAuthorizationStatus.Valid)
            {
                continue;
            }

            var error = authorization.Challenges.FirstOrDefault(c => c.Error is not null)?.Error;
            failures.Add((error ?? new AcmeProblem { Type = AcmeProblem.AcmeErrorPrefix + AcmeErrors.Unauthorized, Detail = $"authorization is {authorization.Status}" })
                with { Identifier = authorization.Identifier });
        }

        return failures.Count switch
        {
            0 => order.Error ?? new AcmeProblem { Type = AcmeProblem.AcmeErrorPrefix + AcmeErrors.Unauthorized, Detail = $"Order {order.Url} became invalid" },
            1 => failures[0],
            _ => new AcmeProblem
            {
                Type = AcmeProblem.AcmeErrorPrefix + AcmeErrors.Compound,
                Detail = $"{failures.Count} identifiers of order {order.Url} failed validation",
                Subproblems = failures,
            },
        };
    }

    private Task<AcmeOrder> WaitForOrderAsync(Uri orderUrl, TimeSpan firstDelay, CancellationToken cancellationToken) =>
        PollAsync("order", orderUrl, firstDelay, ReadOrder, o => o.Status is not (AcmeOrderStatus.Pending or AcmeOrderStatus.Processing), cancellationToken);

    /// <summary>POST-as-GET <paramref name="url"/> until <paramref name="done"/>, never faster than the adaptive
    /// delay, and never earlier than <c>Retry-After</c> says.</summary>
    private async Task<T> PollAsync<T>(string operation, Uri url, TimeSpan firstDelay, Func<AcmeResponse, Uri, T> read, Func<T, bool> done, CancellationToken cancellationToken)
    {
        var delay = Client.Options.FirstPollDelay;
        if (firstDelay > TimeSpan.Zero)
        {
            await Task.Delay(firstDelay, Client.Time, cancellationToken);
        }

        while (true)
        {
            var response = await PostAsGetAsync(operation, url, cancellationToken);
            var value = read(response, url);
            if (done(value))
            {
                return value;
            }

            var wait = response.RetryAfter is { } retryAfter && retryAfter > TimeSpan.Zero ? retryAfter : delay;
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, Client.Options.MaxPollDelay.Ticks));
            await Task.Delay(wait, Client.Time, cancellationToken);
        }
    }

    private async Task<AcmeCertificateChain> DownloadChainAsync(Uri url, CancellationToken cancellationToken)
    {
        var response = await WithAccountAsync(
            (key, accountUrl) => Client.PostAsync("certificate", url, key, accountUrl, null, cancellationToken, AcmeClient.PemChainContentType),
            cancellationToken);
        return AcmeCertificateChain.TryParse(response, out var chain) ? chain : throw AcmeClient.Invalid("certificate chain", "it holds no PEM certificate");
    }

    private Task<AcmeResponse> PostAsGetAsync(string operation, Uri url, CancellationToken cancellationToken) =>
        WithAccountAsync((key, accountUrl) => Client.PostAsync(operation, url, key, accountUrl, null, cancellationToken), cancellationToken);

    private async Task<AcmeAccount> AccountRequestAsync(string operation, byte[]? payload, CancellationToken cancellationToken)
    {
        var response = await WithAccountAsync((key, accountUrl) => Client.PostAsync(operation, accountUrl, key, accountUrl, payload, cancellationToken), cancellationToken);
        return AcmeClient.Read(response, AcmeJson.Default.AcmeAccount, "account") with { Url = response.RequestUrl };
    }

    private static AcmeOrder ReadOrder(AcmeResponse response, Uri url) => Read(response, url, AcmeJson.Default.AcmeOrder, "order") with { Url = url };

    private static AcmeAuthorization ReadAuthorization(AcmeResponse response, Uri url) =>
        Read(response, url, AcmeJson.Default.AcmeAuthorization, "authorization") with { Url = url };

    private static T Read<T>(AcmeResponse response, Uri url, JsonTypeInfo<T> type, string what) => AcmeClient.Read(response, type, $"{what} at {url}");

    /// <summary>Runs a request as the account; on <c>accountDoesNotExist</c> registers again and runs it once more.</summary>
    private async Task<T> WithAccountAsync<T>(Func<AcmeAccountKey, Uri, Task<T>> request, CancellationToken cancellationToken)
    {
        var accountUrl = await EnsureAccountAsync(cancellationToken);
        try
        {
            return await request(Key, accountUrl);
        }
        catch (AcmeException ex) when (ex.Problem.Is(AcmeErrors.AccountDoesNotExist) && ReRegisterWhenForgotten)
        {
            AcmeLog.AccountForgotten(Client.Logger, accountUrl);
            return await request(Key, await RegisterAsync(accountUrl, cancellationToken));
        }
    }

    /// <summary>
    /// Registers the key, unless another request already replaced <paramref name="forgotten"/>. Concurrent callers
    /// share one registration, which no single caller's token cancels.
    /// </summary>
    private Task<Uri> RegisterAsync(Uri? forgotten, CancellationToken cancellationToken)
    {
        lock (_registrationGate)
        {
            if (AccountUrl is { } current && current != forgotten)
            {
                return Task.FromResult(current);
            }

            if (_registration is null || _registration.IsCompleted)
            {
                _registration = RegisterCoreAsync(forgotten);
            }

            return _registration.WaitAsync(cancellationToken);
        }
    }

    private async Task<Uri> RegisterCoreAsync(Uri? forgotten)
    {
        await Task.Yield();
        var account = await Client.CreateAccountAsync(Key, Registration, CancellationToken.None);
        Volatile.Write(ref _accountUrl, account.Url);
        if (forgotten is not null)
        {
            AcmeLog.AccountReplaced(Client.Logger, forgotten, account.Url);
        }

        if (AccountRegistered is { } registered)
        {
            await registered(account, CancellationToken.None);
        }

        return account.Url;
    }
}
