using System.Net;
using Gatehouse.Acme;
using Gatehouse.Certificates;
using Gatehouse.Keys;
using Gatehouse.Storage;
using Gatehouse.Storage.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gatehouse.Tests.Acme;

/// <summary>The Gatehouse ACME issuer over the in-process fake ACME server (a fake: Pebble has no way to answer
/// rateLimited on demand): a rateLimited answer parks the issuer until the CA's time, for every certificate.</summary>
public sealed class AcmeIssuerParkingTests : IAsyncLifetime
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
}
