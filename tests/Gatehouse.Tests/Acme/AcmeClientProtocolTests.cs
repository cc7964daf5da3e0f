using System.Buffers.Text;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gatehouse.Acme;

namespace Gatehouse.Tests.Acme;

/// <summary>Nonces, retries, polling, errors and account handling, against <see cref="FakeAcmeServer"/>.</summary>
public sealed class AcmeClientProtocolTests : IDisposable
{
    private static readonly Uri OrderUrl = new(FakeAcmeServer.Origin + "/order/1");

    private readonly JumpingTimeProvider _time = new();
    private readonly FakeAcmeServer _server;
    private readonly HttpClient _http;
    private readonly AcmeClient _client;
    private readonly AcmeAccountKey _key = AcmeAccountKey.Create();
    private readonly AcmeAccountSession _session;

    public AcmeClientProtocolTests()
    {
        _server = new FakeAcmeServer { Time = _time };
        _http = new HttpClient(_server);
        _client = new AcmeClient(_http, FakeAcmeServer.DirectoryUrl, new AcmeClientOptions { TimeProvider = _time });
        _session = new AcmeAccountSession(_client, _key, new AcmeAccountRegistration { Contact = ["mailto:a@example.test"], TermsOfServiceAgreed = true });
    }

    [Fact]
    public async Task Nonces_ManyConcurrentRequests_EachNonceUsedOnceAndThePoolRefillsFromResponses()
    {
        _server.Respond = request => request.Path == "/order/1" ? FakeAcmeServer.Json(HttpStatusCode.OK, FakeAcmeServer.Order("pending")) : null;
        await _session.EnsureAccountAsync(CancellationToken.None);
        _server.Latency = TimeSpan.FromMilliseconds(20);

        await Task.WhenAll(Enumerable.Range(0, 40).Select(_ => Task.Run(() => _session.GetOrderAsync(OrderUrl, CancellationToken.None))));
        var headsAfterFirstWave = _server.NonceHeads;
        await Task.WhenAll(Enumerable.Range(0, 40).Select(_ => Task.Run(() => _session.GetOrderAsync(OrderUrl, CancellationToken.None))));

        Assert.Equal(0, _server.NoncesReused);
        Assert.Equal(81, _server.Requests.Count);
        var nonces = _server.Requests.Select(r => r.Nonce).ToArray();
        Assert.Equal(nonces.Length, nonces.Distinct(StringComparer.Ordinal).Count());
        // The first wave finds the pool (nearly) empty: one HEAD newNonce each. The second mostly uses the nonces the
        // first wave's responses brought: no more than 40 HEADs for the 80 requests.
        Assert.InRange(headsAfterFirstWave, 30, 40);
        Assert.InRange(_server.NonceHeads, headsAfterFirstWave, 40);
    }

    [Fact]
    public async Task BadNonce_Refused_RetriedWithTheNonceTheRefusalCarried()
    {
        await _session.EnsureAccountAsync(CancellationToken.None);
        _server.Respond = request => request.Path == "/order/1" ? FakeAcmeServer.Json(HttpStatusCode.OK, FakeAcmeServer.Order("ready")) : null;
        _server.RejectNonces = 3;

        var order = await _session.GetOrderAsync(OrderUrl, CancellationToken.None);

        Assert.Equal(AcmeOrderStatus.Ready, order.Status);
        var refusals = _server.Responses.Where(r => r.Status == HttpStatusCode.BadRequest).ToArray();
        Assert.Equal(3, refusals.Length);
        var accepted = _server.Requests.Last();
        Assert.Equal(refusals[^1].Nonce, accepted.Nonce);
    }

    [Fact]
    public async Task BadNonce_AlwaysRefused_GivesUpAfterTheBoundAsRetryable()
    {
        await _session.EnsureAccountAsync(CancellationToken.None);
        _server.RejectNonces = int.MaxValue;

        var error = await Assert.ThrowsAsync<AcmeException>(() => _session.GetOrderAsync(OrderUrl, CancellationToken.None));

        Assert.True(error.Problem.Is(AcmeErrors.BadNonce));
        Assert.True(error.IsRetryable);
        Assert.Equal(1 + _client.Options.BadNonceRetries, _server.Responses.Count(r => r.Path == "/order/1"));
    }

    [Fact]
    public async Task RateLimited_Refusal_CarriesRetryAfterAsATime()
    {
        await _session.EnsureAccountAsync(CancellationToken.None);
        _server.Respond = request => request.Path == "/new-order"
            ? FakeAcmeServer.Problem(HttpStatusCode.TooManyRequests, AcmeErrors.RateLimited, "too many certificates", retryAfter: "3600")
            : null;

        var error = await Assert.ThrowsAsync<AcmeException>(() => _session.CreateOrderAsync(AcmeOrderRequest.ForNames(["example.test"]), CancellationToken.None));

        Assert.True(error.Problem.Is(AcmeErrors.RateLimited));
        Assert.Equal(429, error.Problem.Status);
        Assert.Equal(_time.GetUtcNow() + TimeSpan.FromHours(1), error.Problem.RetryAfter);
        Assert.True(error.IsRetryable);
    }

    [Fact]
    public async Task Refusal_WithoutProblemDocument_StatusKept()
    {
        await _session.EnsureAccountAsync(CancellationToken.None);
        _server.Respond = _ => new HttpResponseMessage(HttpStatusCode.BadGateway) { Content = new StringContent("<html>bad gateway</html>", Encoding.UTF8, "text/html") };

        var error = await Assert.ThrowsAsync<AcmeException>(() => _session.GetOrderAsync(OrderUrl, CancellationToken.None));

        Assert.Equal(502, error.Problem.Status);
        Assert.True(error.IsRetryable);
        Assert.Contains("text/html", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Transport_ConnectionFails_RetryableTransportProblem()
    {
        using var http = new HttpClient(new FailingHandler());
        var client = new AcmeClient(http, FakeAcmeServer.DirectoryUrl);

        var error = await Assert.ThrowsAsync<AcmeException>(() => client.GetDirectoryAsync(CancellationToken.None));

        Assert.Equal(AcmeProblem.TransportType, error.Problem.Type);
        Assert.True(error.IsRetryable);
        Assert.IsType<HttpRequestException>(error.InnerException);
    }

    [Fact]
    public async Task Transport_CallerCancels_OperationCanceled()
    {
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => _session.GetOrderAsync(OrderUrl, cancelled.Token));
    }

    [Fact]
    public async Task WaitForOrder_NoRetryAfter_DelaysStartShortAndDoubleUpToTheCap()
    {
        await _session.EnsureAccountAsync(CancellationToken.None);
        var polls = 0;
        _server.Respond = request => request.Path == "/order/1"
            ? FakeAcmeServer.Json(HttpStatusCode.OK, FakeAcmeServer.Order(Interlocked.Increment(ref polls) < 11 ? "processing" : "valid", FakeAcmeServer.Origin + "/cert/1"))
            : null;

        var order = await _session.WaitForOrderAsync(OrderUrl, CancellationToken.None);

        Assert.Equal(AcmeOrderStatus.Valid, order.Status);
        Assert.Equal([10, 20, 40, 80, 160, 320, 640, 1280, 2000, 2000], _time.Waits.Select(w => (int)w.TotalMilliseconds));
    }

    [Fact]
    public async Task WaitForAuthorization_RetryAfter_WaitsWhatTheServerSaid()
    {
        await _session.EnsureAccountAsync(CancellationToken.None);
        var polls = 0;
        _server.Respond = request =>
        {
            if (request.Path != "/authz/1")
            {
                return null;
            }

            var poll = Interlocked.Increment(ref polls);
            var retryAfter = poll == 1 ? "3" : poll == 2 ? _time.GetUtcNow().AddSeconds(7).ToString("r", System.Globalization.CultureInfo.InvariantCulture) : null;
            return FakeAcmeServer.Json(HttpStatusCode.OK, Authorization(poll < 3 ? "pending" : "valid"), retryAfter: retryAfter);
        };

        var authorization = await _session.WaitForAuthorizationAsync(new Uri(FakeAcmeServer.Origin + "/authz/1"), CancellationToken.None);

        Assert.Equal(AcmeAuthorizationStatus.Valid, authorization.Status);
        Assert.Equal([3_000, 7_000], _time.Waits.Select(w => (int)w.TotalMilliseconds));
    }

    [Fact]
    public async Task Session_AccountForgottenUnderConcurrentRequests_RegistersOnceAndRetriesEach()
    {
        var registered = new List<Uri>();
        var session = new AcmeAccountSession(_client, _key, _session.Registration)
        {
            AccountRegistered = (account, _) =>
            {
                lock (registered)
                {
                    registered.Add(account.Url);
                }

                return Task.CompletedTask;
            },
        };
        _server.Respond = request => request.Path == "/order/1" ? FakeAcmeServer.Json(HttpStatusCode.OK, FakeAcmeServer.Order("ready")) : null;
        await session.EnsureAccountAsync(CancellationToken.None);

        _server.ForgetAccounts();
        var orders = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => Task.Run(() => session.GetOrderAsync(OrderUrl, CancellationToken.None))));

        Assert.All(orders, o => Assert.Equal(AcmeOrderStatus.Ready, o.Status));
        Assert.Equal(2, registered.Count);
        Assert.Equal(2, _server.Requests.Count(r => r.Path == "/new-account"));
        Assert.Equal(registered[1], session.AccountUrl);
    }

    [Fact]
    public async Task ChangeKey_NestedJws_Rfc8555Section735()
    {
        var accountUrl = await _session.EnsureAccountAsync(CancellationToken.None);
        using var newKey = AcmeAccountKey.Create(AcmeKeyAlgorithm.Rs256);
        var oldJwk = JsonDocument.Parse(_key.JwkJson).RootElement;
        _server.Respond = request =>
        {
            if (request.Path == "/key-change")
            {
                _server.SetAccountKey(accountUrl.AbsoluteUri, FakeAcmeServer.DecodeHeader(request.PayloadJson).GetProperty("jwk"));
                return new HttpResponseMessage(HttpStatusCode.OK);
            }

            return request.Path.StartsWith("/account/", StringComparison.Ordinal) ? FakeAcmeServer.Json(HttpStatusCode.OK, new JsonObject { ["status"] = "valid" }) : null;
        };

        await _session.ChangeKeyAsync(newKey, CancellationToken.None);

        var outer = _server.Requests.Single(r => r.Path == "/key-change");
        Assert.Equal(accountUrl.AbsoluteUri, outer.Header.GetProperty("kid").GetString());
        var inner = outer.PayloadJson;
        var innerHeader = FakeAcmeServer.DecodeHeader(inner);
        Assert.Equal("RS256", innerHeader.GetProperty("alg").GetString());
        Assert.Equal(FakeAcmeServer.Origin + "/key-change", innerHeader.GetProperty("url").GetString());
        Assert.False(innerHeader.TryGetProperty("nonce", out _));
        Assert.True(FakeAcmeServer.Verify(inner, innerHeader.GetProperty("jwk")));
        var innerPayload = JsonDocument.Parse(Base64Url.DecodeFromChars(inner.GetProperty("payload").GetString())).RootElement;
        Assert.Equal(accountUrl.AbsoluteUri, innerPayload.GetProperty("account").GetString());
        Assert.Equal(oldJwk.GetRawText(), innerPayload.GetProperty("oldKey").GetRawText());
        var after = _server.Requests.Last();
        Assert.Equal("RS256", after.Header.GetProperty("alg").GetString());
    }

    [Fact]
    public async Task FindAccount_UnknownKey_Null()
    {
        Assert.Null(await _client.FindAccountAsync(_key, CancellationToken.None));
        Assert.True(_server.Requests.Single().PayloadJson.GetProperty("onlyReturnExisting").GetBoolean());
    }

    [Fact]
    public async Task CreateAccount_Payload_ContactTermsAndJwk()
    {
        var account = await _client.CreateAccountAsync(_key, _session.Registration, CancellationToken.None);

        var request = Assert.Single(_server.Requests);
        Assert.Equal(["mailto:a@example.test"], request.PayloadJson.GetProperty("contact").EnumerateArray().Select(c => c.GetString()));
        Assert.True(request.PayloadJson.GetProperty("termsOfServiceAgreed").GetBoolean());
        Assert.True(request.Header.TryGetProperty("jwk", out _));
        Assert.Equal(new Uri(FakeAcmeServer.Origin + "/account/1"), account.Url);
    }

    [Fact]
    public async Task GetOrder_WithoutFinalizeUrl_InvalidResponse()
    {
        var order = FakeAcmeServer.Order("pending");
        order.Remove("finalize");
        _server.Respond = request => request.Path == "/order/1" ? FakeAcmeServer.Json(HttpStatusCode.OK, order) : null;

        var error = await Assert.ThrowsAsync<AcmeException>(() => _session.GetOrderAsync(OrderUrl, CancellationToken.None));

        Assert.Equal(AcmeProblem.InvalidResponseType, error.Problem.Type);
        Assert.True(error.IsRetryable);
        Assert.Contains("finalize", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task IssueCertificate_TwoNamesFailValidation_CompoundProblemAndEveryAnswerCleanedUp()
    {
        var answered = new HashSet<string>(StringComparer.Ordinal);
        _server.Respond = request =>
        {
            switch (request.Path)
            {
                case "/new-order":
                    var order = FakeAcmeServer.Order("pending");
                    order["authorizations"] = new JsonArray(FakeAcmeServer.Origin + "/authz/a", FakeAcmeServer.Origin + "/authz/b");
                    return FakeAcmeServer.Json(HttpStatusCode.Created, order, OrderUrl);
                case "/authz/a" or "/authz/b":
                    var name = request.Path[^1..] + ".example.test";
                    var failed = answered.Contains(request.Path);
                    var authorization = Authorization(failed ? "invalid" : "pending", name);
                    if (failed)
                    {
                        authorization["challenges"]![0]!["error"] = new JsonObject { ["type"] = AcmeProblem.AcmeErrorPrefix + AcmeErrors.IncorrectResponse, ["detail"] = "wrong key authorization for " + name };
                    }

                    return FakeAcmeServer.Json(HttpStatusCode.OK, authorization);
                case "/chall/a" or "/chall/b":
                    lock (answered)
                    {
                        answered.Add("/authz/" + request.Path[^1..]);
                    }

                    return FakeAcmeServer.Json(HttpStatusCode.OK, new JsonObject { ["type"] = "http-01", ["url"] = FakeAcmeServer.Origin + request.Path, ["status"] = "processing", ["token"] = "tok" });
                case "/order/1":
                    return FakeAcmeServer.Json(HttpStatusCode.OK, FakeAcmeServer.Order(answered.Count == 2 ? "invalid" : "pending"));
                default:
                    return null;
            }
        };
        var solver = new RecordingSolver();
        using var certificateKey = AcmeCsr.CreateKey(AcmeCertificateKeyType.EcdsaP256);

        var error = await Assert.ThrowsAsync<AcmeException>(() => _session.IssueCertificateAsync(
            AcmeOrderRequest.ForNames(["a.example.test", "b.example.test"]), AcmeCsr.Create(certificateKey, ["a.example.test", "b.example.test"]), [solver], null, CancellationToken.None));

        Assert.True(error.Problem.Is(AcmeErrors.Compound), error.Message);
        Assert.Equal(["a.example.test", "b.example.test"], error.Problem.Subproblems.Select(p => p.Identifier!.Value).Order(StringComparer.Ordinal));
        Assert.All(error.Problem.Subproblems, p => Assert.True(p.Is(AcmeErrors.IncorrectResponse)));
        Assert.False(error.IsRetryable);
        Assert.Equal(2, solver.Prepared.Count);
        Assert.Equal(solver.Prepared.Order(StringComparer.Ordinal), solver.CleanedUp.Order(StringComparer.Ordinal));
    }

    public void Dispose()
    {
        _key.Dispose();
        _http.Dispose();
        _server.Dispose();
    }

    private static JsonObject Authorization(string status, string name = "example.test") => new()
    {
        ["status"] = status,
        ["identifier"] = new JsonObject { ["type"] = "dns", ["value"] = name },
        ["challenges"] = new JsonArray(new JsonObject { ["type"] = "http-01", ["url"] = FakeAcmeServer.Origin + "/chall/" + name[..1], ["status"] = status, ["token"] = "tok-" + name[..1] }),
    };

    private sealed class RecordingSolver : IAcmeChallengeSolver
    {
        public List<string> Prepared { get; } = [];

        public List<string> CleanedUp { get; } = [];

        public string ChallengeType => AcmeChallenge.Http01;

        public Task PrepareAsync(AcmeChallengeAnswer answer, CancellationToken cancellationToken)
        {
            lock (Prepared)
            {
                Prepared.Add(answer.Identifier.Value);
            }

            return Task.CompletedTask;
        }

        public Task CleanupAsync(AcmeChallengeAnswer answer, CancellationToken cancellationToken)
        {
            lock (CleanedUp)
            {
                CleanedUp.Add(answer.Identifier.Value);
            }

            return Task.CompletedTask;
        }
    }

    private sealed class FailingHandler : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            throw new HttpRequestException("Connection refused (acme.test:443)");
    }
}
