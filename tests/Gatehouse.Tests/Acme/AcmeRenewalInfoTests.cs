using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Gatehouse.Acme;

namespace Gatehouse.Tests.Acme;

/// <summary>ARI (RFC 9773) against <see cref="FakeAcmeServer"/>, an RFC-following test server of our own: Pebble
/// 2.4.0 has no renewalInfo.</summary>
public sealed class AcmeRenewalInfoTests : IDisposable
{
    // RFC 9773 Appendix A: the example certificate (validity in year 1) and its identifier (§4.1).
    private const string Rfc9773Certificate = """
        -----BEGIN CERTIFICATE-----
        MIIBQzCB66ADAgECAgUAh2VDITAKBggqhkjOPQQDAjAVMRMwEQYDVQQDEwpFeGFt
        cGxlIENBMCIYDzAwMDEwMTAxMDAwMDAwWhgPMDAwMTAxMDEwMDAwMDBaMBYxFDAS
        BgNVBAMTC2V4YW1wbGUuY29tMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEeBZu
        7cbpAYNXZLbbh8rNIzuOoqOOtmxA1v7cRm//AwyMwWxyHz4zfwmBhcSrf47NUAFf
        qzLQ2PPQxdTXREYEnKMjMCEwHwYDVR0jBBgwFoAUaYhba4dGQEHhs3uEe6CuLN4B
        yNQwCgYIKoZIzj0EAwIDRwAwRAIge09+S5TZAlw5tgtiVvuERV6cT4mfutXIlwTb
        +FYN/8oCIClDsqBklhB9KAelFiYt9+6FDj3z4KGVelYM5MdsO3pK
        -----END CERTIFICATE-----
        """;

    private const string Rfc9773Identifier = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE";

    private readonly JumpingTimeProvider _time = new();
    private readonly FakeAcmeServer _server;
    private readonly HttpClient _http;
    private readonly AcmeClient _client;

    public AcmeRenewalInfoTests()
    {
        _server = new FakeAcmeServer { Time = _time, OfferRenewalInfo = true };
        _http = new HttpClient(_server);
        _client = new AcmeClient(_http, FakeAcmeServer.DirectoryUrl, new AcmeClientOptions { TimeProvider = _time });
    }

    [Fact]
    public void Compute_Rfc9773ExampleCertificate_MatchesTheRfc()
    {
        using var certificate = X509Certificate2.CreateFromPem(Rfc9773Certificate);

        Assert.Equal(Rfc9773Identifier, AcmeCertificateId.Compute(certificate));
    }

    [Fact]
    public void Compute_Rfc9773ExampleParts_MatchesTheRfc()
    {
        var keyIdentifier = Convert.FromHexString("69885B6B87464041E1B37B847BA0AE2CDE01C8D4");

        Assert.Equal(Rfc9773Identifier, AcmeCertificateId.Compute(keyIdentifier, [0x00, 0x87, 0x65, 0x43, 0x21]));
    }

    [Fact]
    public void Compute_NoAuthorityKeyIdentifier_Throws()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var selfSigned = new CertificateRequest("CN=x", key, HashAlgorithmName.SHA256).CreateSelfSigned(DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddDays(1));

        Assert.Throws<ArgumentException>(() => AcmeCertificateId.Compute(selfSigned));
    }

    [Fact]
    public async Task GetRenewalInfo_WindowExplanationAndRetryAfter()
    {
        _server.Respond = request => request.Path == "/renewal-info/" + Rfc9773Identifier
            ? FakeAcmeServer.Json(HttpStatusCode.OK, new JsonObject
            {
                ["suggestedWindow"] = new JsonObject { ["start"] = "2026-04-01T00:00:00Z", ["end"] = "2026-04-03T00:00:00Z" },
                ["explanationURL"] = "https://acme.test/why",
            }, retryAfter: "21600")
            : null;

        var info = await _client.GetRenewalInfoAsync(Rfc9773Identifier, CancellationToken.None);

        Assert.Equal(new DateTimeOffset(2026, 4, 1, 0, 0, 0, TimeSpan.Zero), info.SuggestedWindow.Start);
        Assert.Equal(new DateTimeOffset(2026, 4, 3, 0, 0, 0, TimeSpan.Zero), info.SuggestedWindow.End);
        Assert.Equal(new Uri("https://acme.test/why"), info.ExplanationUrl);
        Assert.Equal(_time.GetUtcNow() + TimeSpan.FromHours(6), info.RetryAfter);
        Assert.Equal(HttpMethod.Get, Assert.Single(_server.Requests).Method);
    }

    [Fact]
    public async Task GetRenewalInfo_WindowEndsBeforeItStarts_InvalidResponse()
    {
        _server.Respond = _ => FakeAcmeServer.Json(HttpStatusCode.OK, new JsonObject
        {
            ["suggestedWindow"] = new JsonObject { ["start"] = "2026-04-03T00:00:00Z", ["end"] = "2026-04-01T00:00:00Z" },
        });

        var error = await Assert.ThrowsAsync<AcmeException>(() => _client.GetRenewalInfoAsync(Rfc9773Identifier, CancellationToken.None));

        Assert.Equal(AcmeProblem.InvalidResponseType, error.Problem.Type);
    }

    [Fact]
    public async Task GetRenewalInfo_CaWithoutRenewalInfo_InvalidOperation()
    {
        _server.OfferRenewalInfo = false;

        await Assert.ThrowsAsync<InvalidOperationException>(() => _client.GetRenewalInfoAsync(Rfc9773Identifier, CancellationToken.None));
    }

    [Fact]
    public void PickRenewalTime_AlwaysInsideTheWindow()
    {
        var info = new AcmeRenewalInfo { SuggestedWindow = new AcmeRenewalWindow(new DateTimeOffset(2026, 4, 1, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2026, 4, 2, 0, 0, 0, TimeSpan.Zero)) };
        var random = new Random(7);

        var picks = Enumerable.Range(0, 1000).Select(_ => info.PickRenewalTime(random)).ToArray();

        Assert.All(picks, p => Assert.InRange(p, info.SuggestedWindow.Start, info.SuggestedWindow.End));
        Assert.True(picks.Min() < info.SuggestedWindow.Start.AddHours(2) && picks.Max() > info.SuggestedWindow.End.AddHours(-2), "spread over the window");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task CreateOrder_Replaces_SentOnlyWhenTheCaOffersRenewalInfo(bool offered)
    {
        _server.OfferRenewalInfo = offered;
        RespondToNewOrder();
        using var key = AcmeAccountKey.Create();
        var session = new AcmeAccountSession(_client, key, new AcmeAccountRegistration());

        await session.CreateOrderAsync(AcmeOrderRequest.ForNames(["example.test"]) with { Replaces = Rfc9773Identifier }, CancellationToken.None);

        var payload = _server.Requests.Single(r => r.Path == "/new-order").PayloadJson;
        Assert.Equal(offered, payload.TryGetProperty("replaces", out var replaces) && replaces.GetString() == Rfc9773Identifier);
    }

    [Fact]
    public async Task CreateOrder_OfferedProfile_Sent()
    {
        _server.Profiles["shortlived"] = "Six-day certificates";
        RespondToNewOrder();
        using var key = AcmeAccountKey.Create();
        var session = new AcmeAccountSession(_client, key, new AcmeAccountRegistration());

        var directory = await _client.GetDirectoryAsync(CancellationToken.None);
        await session.CreateOrderAsync(AcmeOrderRequest.ForNames(["example.test"]) with { Profile = "shortlived" }, CancellationToken.None);

        Assert.Equal("Six-day certificates", directory.Meta.Profiles["shortlived"]);
        Assert.Equal("shortlived", _server.Requests.Single(r => r.Path == "/new-order").PayloadJson.GetProperty("profile").GetString());
    }

    [Fact]
    public async Task CreateOrder_ProfileNotOffered_RefusedBeforeSending()
    {
        _server.Profiles["classic"] = "90 days";
        using var key = AcmeAccountKey.Create();
        var session = new AcmeAccountSession(_client, key, new AcmeAccountRegistration());

        var error = await Assert.ThrowsAsync<AcmeException>(() => session.CreateOrderAsync(AcmeOrderRequest.ForNames(["example.test"]) with { Profile = "tlsserver" }, CancellationToken.None));

        Assert.Equal(AcmeProblem.ProfileNotOfferedType, error.Problem.Type);
        Assert.False(error.IsRetryable);
        Assert.Contains("classic", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(_server.Requests, r => r.Path == "/new-order");
    }

    public void Dispose()
    {
        _http.Dispose();
        _server.Dispose();
    }

    private void RespondToNewOrder() =>
        _server.Respond = request => request.Path == "/new-order"
            ? FakeAcmeServer.Json(HttpStatusCode.Created, FakeAcmeServer.Order("pending"), new Uri(FakeAcmeServer.Origin + "/order/1"))
            : null;
}
