using System.Net;
using Gatehouse.Acme;
using Gatehouse.Certificates;
using Gatehouse.Keys;
using Gatehouse.Storage;
using Gatehouse.Storage.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gatehouse.Tests.Acme;

/// <summary>The Gatehouse ACME issuer over the in-process fake ACME server (a fake: Pebble 2.4.0 cannot answer
/// rateLimited on demand and has no renewalInfo): rate-limit parking and RFC 9773 renewal advice.</summary>
public sealed class AcmeIssuerFakeServerTests : IAsyncLifetime
{
    private readonly TempDirectory _directory = new();
    private readonly FakeAcmeServer _server = new();
    private SqliteStore _store = null!;
    private SoftwareMasterKey _master = null!;
    private AcmeIssuer _issuer = null!;

    public Task InitializeAsync()
    {
        _store = SqliteStore.Open(Path.Combine(_directory.Path, "store.db"));
        _master = new SoftwareMasterKey("ring", 1, new byte[32]);
        var cipher = new EnvelopeCipher(new MasterKeyRing([_master], _master));
        var settings = new AcmeIssuerSettings { Name = "ca", Directory = FakeAcmeServer.DirectoryUrl, AcceptTerms = true };
        _issuer = new AcmeIssuer(settings, new HttpClient(_server), _store, cipher, [new Http01StoreSolver(_store)], TimeProvider.System, NullLogger<AcmeIssuer>.Instance);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        _issuer.Dispose();
        _master.Dispose();
        await _store.DisposeAsync();
        _directory.Dispose();
    }

    [Fact]
    public async Task RateLimited_ParksTheIssuer_UntilTheCasTime_AndNothingIsSentMeanwhile()
    {
        _server.Respond = request => request.Path == "/new-order"
            ? FakeAcmeServer.Problem(HttpStatusCode.TooManyRequests, AcmeErrors.RateLimited, "too many new orders", retryAfter: "3600")
            : null;

        var first = await Assert.ThrowsAsync<IssuanceException>(() => _issuer.IssueAsync(new IssuanceRequest("a.test", ["a.test"], [1]), default));
        var orders = _server.Requests.Count(r => r.Path == "/new-order");
        var second = await Assert.ThrowsAsync<IssuanceException>(() => _issuer.IssueAsync(new IssuanceRequest("b.test", ["b.test"], [1]), default));

        Assert.Contains("rateLimited: too many new orders", first.Message, StringComparison.Ordinal);
        Assert.True(first.Retryable);
        Assert.InRange(first.RetryAfter!.Value, DateTimeOffset.UtcNow.AddMinutes(59), DateTimeOffset.UtcNow.AddMinutes(61));
        Assert.Equal(first.RetryAfter, _issuer.ParkedUntil);
        Assert.Contains("nothing sent", second.Message, StringComparison.Ordinal);
        Assert.Equal(first.RetryAfter, second.RetryAfter);
        Assert.Equal(orders, _server.Requests.Count(r => r.Path == "/new-order"));

        // The account key went to the store sealed.
        var account = CoreJson.Deserialize<AcmeAccountRecord>((await _store.GetAsync(StoreKeys.AcmeAccount("ca")))!);
        Assert.True(EnvelopeCipher.TryReadKeyVersion(account.SealedKey, out _, out _));
    }

    [Fact]
    public async Task RenewalAdvice_ComesFromRenewalInfo_WithATimeInsideTheWindow_AndRetryAfterAsTheNextQuestion()
    {
        var start = DateTimeOffset.UtcNow.AddDays(10);
        var end = start.AddDays(2);
        _server.OfferRenewalInfo = true;
        _server.Respond = request => request.Path.StartsWith("/renewal-info/", StringComparison.Ordinal)
            ? FakeAcmeServer.Json(HttpStatusCode.OK, new System.Text.Json.Nodes.JsonObject
            {
                ["suggestedWindow"] = new System.Text.Json.Nodes.JsonObject { ["start"] = start.ToString("O"), ["end"] = end.ToString("O") },
                ["explanationURL"] = "https://acme.test/why",
            }, retryAfter: "21600")
            : null;
        using var key = System.Security.Cryptography.ECDsa.Create();
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=a.test", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(System.Security.Cryptography.X509Certificates.X509AuthorityKeyIdentifierExtension.CreateFromSubjectKeyIdentifier(new byte[] { 1, 2, 3, 4 }));
        using var leaf = request.CreateSelfSigned(DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddDays(30));

        var advice = await _issuer.GetRenewalAdviceAsync(leaf.ExportCertificatePem(), default);

        Assert.NotNull(advice);
        Assert.Equal((start, end), (advice.WindowStart, advice.WindowEnd), new WindowComparer());
        Assert.InRange(advice.RenewAt, start.AddSeconds(-1), end.AddSeconds(1));
        Assert.InRange(advice.CheckAgainAt, DateTimeOffset.UtcNow.AddHours(5.9), DateTimeOffset.UtcNow.AddHours(6.1));
        Assert.Equal(new Uri("https://acme.test/why"), advice.Explanation);
        Assert.Contains(_server.Requests, r => r.Path.StartsWith("/renewal-info/AQIDBA.", StringComparison.Ordinal)); // base64url(AKI) "." serial
    }

    [Fact]
    public async Task Profile_IsSentWhenTheCaOffersIt_AndRefusedClearlyWithoutASendWhenItDoesNot()
    {
        _server.Profiles["shortlived"] = "6-day certificates";
        _server.Respond = request => request.Path == "/new-order"
            ? FakeAcmeServer.Problem(HttpStatusCode.BadRequest, AcmeErrors.Malformed, "stop here")
            : null;

        await Assert.ThrowsAsync<IssuanceException>(() => _issuer.IssueAsync(new IssuanceRequest("a.test", ["a.test"], [1]) { Profile = "shortlived" }, default));
        var order = _server.Requests.Single(r => r.Path == "/new-order");
        Assert.Equal("shortlived", order.PayloadJson.GetProperty("profile").GetString());

        var refused = await Assert.ThrowsAsync<IssuanceException>(() => _issuer.IssueAsync(new IssuanceRequest("b.test", ["b.test"], [1]) { Profile = "tlsserver" }, default));
        Assert.False(refused.Retryable);
        Assert.Contains("tlsserver", refused.Message, StringComparison.Ordinal);
        Assert.Single(_server.Requests, r => r.Path == "/new-order");
    }

    private sealed class WindowComparer : IEqualityComparer<(DateTimeOffset, DateTimeOffset)>
    {
        public bool Equals((DateTimeOffset, DateTimeOffset) x, (DateTimeOffset, DateTimeOffset) y) =>
            Math.Abs((x.Item1 - y.Item1).TotalSeconds) < 1 && Math.Abs((x.Item2 - y.Item2).TotalSeconds) < 1;

        public int GetHashCode((DateTimeOffset, DateTimeOffset) obj) => 0;
    }
}
