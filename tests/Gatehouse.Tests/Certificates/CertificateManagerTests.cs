using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Certificates;
using Gatehouse.Keys;
using Gatehouse.Sites;
using Gatehouse.Storage;
using Gatehouse.Storage.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Gatehouse.Tests.Certificates;

/// <summary>
/// The manager with a real SQLite store and the real local CA, on a virtual clock: issuance, renewal with a fresh
/// key when a third of the lifetime is left, backoff after a real failure, and removal.
/// </summary>
public sealed class CertificateManagerTests : IAsyncLifetime
{
    private static readonly TimeSpan Lifetime = TimeSpan.FromHours(1);
    private readonly TempDirectory _directory = new();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 22, 12, 0, 0, TimeSpan.Zero));
    private readonly CancellationTokenSource _stop = new();
    private SqliteStore _store = null!;
    private SoftwareMasterKey _master = null!;
    private CertificateManager _manager = null!;
    private SiteRepository _sites = null!;
    private Task _mirrors = Task.CompletedTask;
    private ScriptedAdviceIssuer _advised = null!;

    public async Task InitializeAsync()
    {
        _store = SqliteStore.Open(Path.Combine(_directory.Path, "store.db"), _time);
        _master = new SoftwareMasterKey("test", 1, RandomNumberGenerator.GetBytes(32));
        var cipher = new EnvelopeCipher(new MasterKeyRing([_master], _master));
        var ca = new LocalCertificateAuthority(_store, cipher, _time, new LocalCaOptions { LeafLifetime = Lifetime }, NullLogger<LocalCertificateAuthority>.Instance);
        await ca.EnsureCreatedAsync(default);
        var siteMirror = new StoreMirror<SiteDefinition>(_store, StoreKeys.SitesPrefix, CoreJson.Deserialize<SiteDefinition>, NullLogger.Instance);
        var certificateMirror = new StoreMirror<CertificateRecord>(_store, StoreKeys.CertificatesPrefix, CoreJson.Deserialize<CertificateRecord>, NullLogger.Instance);
        _mirrors = Task.WhenAll(siteMirror.RunAsync(_stop.Token), certificateMirror.RunAsync(_stop.Token));
        _advised = new ScriptedAdviceIssuer(ca);
        _manager = new CertificateManager(_store, siteMirror, certificateMirror, [ca, _advised], cipher, _time, new CertificateManagerOptions(), NullLogger<CertificateManager>.Instance);
        _sites = new SiteRepository(_store);
        await _manager.StartAsync(default);
    }

    public async Task DisposeAsync()
    {
        await _manager.StopAsync(default);
        await _stop.CancelAsync();
        await _mirrors;
        await _store.DisposeAsync();
        _master.Dispose();
        _directory.Dispose();
    }

    [Fact]
    public async Task Site_IsIssuedThenRenewedWithAFreshKeyWhenAThirdIsLeft_ThenRemovedWithItsSite()
    {
        Assert.Empty(await _sites.PutAsync(Site("renew.test"), "site", default));
        var first = await WaitForAsync("renew.test", r => r.HasChain);
        Assert.Equal(CertificateStatus.Valid, first.Status);
        Assert.Equal(_time.GetUtcNow() + Lifetime, first.NotAfter!.Value, TimeSpan.FromSeconds(1));
        Assert.Equal(first.NotAfter!.Value - TimeSpan.FromMinutes(65) / 3, first.RenewAfter!.Value, TimeSpan.FromSeconds(1)); // lifetime incl. 5 min back-dating

        _time.Advance(TimeSpan.FromMinutes(30)); // not due yet
        await Task.Delay(300);
        Assert.Equal(first.Serial, (await ReadAsync("renew.test"))!.Serial);

        _time.Advance(first.RenewAfter!.Value - _time.GetUtcNow() + TimeSpan.FromSeconds(1));
        var renewed = await WaitForAsync("renew.test", r => r.Serial != first.Serial);
        Assert.True(renewed.NotAfter > first.NotAfter);
        Assert.NotEqual(PublicKey(first), PublicKey(renewed));

        Assert.NotNull(await _sites.RemoveByHostAsync("renew.test", null, default));
        Assert.True(await EventuallyAsync(async () => await ReadAsync("renew.test") is null));
    }

    [Fact]
    public async Task IssuerFailure_IsRecordedAndRetriedWithBackoff()
    {
        // A real failure: the local CA's intermediate is gone.
        var intermediate = (await _store.GetAsync(StoreKeys.LocalCaIntermediate))!;
        await _store.CommitAsync(new StoreTransaction().Delete(StoreKeys.LocalCaIntermediate));
        Assert.Empty(await _sites.PutAsync(Site("fail.test"), "site", default));

        var failing = await WaitForAsync("fail.test", r => r.Status == CertificateStatus.Failing);
        Assert.Equal(1, failing.ConsecutiveFailures);
        Assert.Contains("local: The local CA has not been created yet.", failing.LastError, StringComparison.Ordinal);
        Assert.InRange((failing.RetryAfter!.Value - _time.GetUtcNow()).TotalSeconds, 47, 73); // 1 minute ± 20 %
        Assert.False(failing.HasChain);

        await _store.CommitAsync(new StoreTransaction().Put(StoreKeys.LocalCaIntermediate, intermediate.Value));
        await Task.Delay(300);
        Assert.Equal(CertificateStatus.Failing, (await ReadAsync("fail.test"))!.Status); // waits for the retry time

        _time.Advance(TimeSpan.FromMinutes(2));
        var issued = await WaitForAsync("fail.test", r => r.HasChain);
        Assert.Equal(CertificateStatus.Valid, issued.Status);

        // Every attempt is kept, newest first, with the issuer's words.
        Assert.Equal(2, issued.History.Count);
        Assert.Equal(("local", true, "issued serial " + issued.Serial), (issued.History[0].Issuer, issued.History[0].Succeeded, issued.History[0].Detail));
        Assert.Equal(("local", false, "The local CA has not been created yet."), (issued.History[1].Issuer, issued.History[1].Succeeded, issued.History[1].Detail));
        Assert.Equal(0, issued.ConsecutiveFailures);
        Assert.Null(issued.LastError);
    }

    [Fact]
    public async Task PassthroughSite_HasNoDemand_AndAnOffloadSiteTurnedPassthroughLosesItsCertificate()
    {
        var passthrough = new SiteDefinition { Id = "pass.test", Hosts = ["pass.test"], Backends = ["tcp://127.0.0.1:443"], Mode = SiteMode.Passthrough };
        Assert.Null(CertificateManager.DemandOf(passthrough));

        Assert.Empty(await _sites.PutAsync(Site("turned.test"), "site", default));
        await WaitForAsync("turned.test", r => r.HasChain);
        Assert.Empty(await _sites.PutAsync(passthrough with { Id = "turned.test", Hosts = ["turned.test"] }, "site", default));
        Assert.True(await EventuallyAsync(async () => await ReadAsync("turned.test") is null));

        Assert.Empty(await _sites.PutAsync(passthrough, "site", default));
        await Task.Delay(300);
        Assert.Null(await ReadAsync("pass.test"));
    }

    [Fact]
    public async Task SiteNamesChanged_IsReissuedForTheNewNames()
    {
        Assert.Empty(await _sites.PutAsync(Site("names.test"), "site", default));
        var first = await WaitForAsync("names.test", r => r.HasChain);
        Assert.Empty(await _sites.PutAsync(Site("names.test", "www.names.test"), "site", default));
        var second = await WaitForAsync("names.test", r => r.Names.Count == 2 && r.Serial != first.Serial);
        var leaf = X509Certificate2.CreateFromPem(second.ChainPem);
        Assert.Equal(["names.test", "www.names.test"], leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single().EnumerateDnsNames());
    }

    [Fact]
    public async Task FailureAfterNameChange_BacksOffInsteadOfRetryingAtOnce()
    {
        Assert.Empty(await _sites.PutAsync(Site("rename.test"), "site", default));
        var first = await WaitForAsync("rename.test", r => r.HasChain);
        var intermediate = (await _store.GetAsync(StoreKeys.LocalCaIntermediate))!;
        await _store.CommitAsync(new StoreTransaction().Delete(StoreKeys.LocalCaIntermediate));

        Assert.Empty(await _sites.PutAsync(Site("rename.test", "www.rename.test"), "site", default));
        var failing = await WaitForAsync("rename.test", r => r.Status == CertificateStatus.Failing);
        Assert.Equal(["rename.test"], failing.Names); // the served chain's names
        Assert.Equal(["rename.test", "www.rename.test"], failing.AttemptedNames);
        await Task.Delay(500);
        var later = (await ReadAsync("rename.test"))!;
        Assert.Equal(1, later.ConsecutiveFailures); // no retry storm before the retry time
        Assert.Equal(first.Serial, later.Serial);

        await _store.CommitAsync(new StoreTransaction().Put(StoreKeys.LocalCaIntermediate, intermediate.Value));
        _time.Advance(TimeSpan.FromMinutes(2));
        var renamed = await WaitForAsync("rename.test", r => r.Status == CertificateStatus.Valid && r.Names.Count == 2);
        Assert.Null(renamed.AttemptedNames);
    }

    [Fact]
    public async Task RenewalAdvice_IsAskedAfterIssuance_MovesRenewalIntoTheCasWindow_AndIsAskedAgainWhenTheCaSays()
    {
        var now = _time.GetUtcNow();
        _advised.Advice = new RenewalAdvice(now + TimeSpan.FromMinutes(50), now + TimeSpan.FromMinutes(55), now + TimeSpan.FromMinutes(52), now + TimeSpan.FromMinutes(10), null);
        Assert.Empty(await _sites.PutAsync(Site("ari.test") with { Issuers = ["advised"] }, "site", default));

        var advised = await WaitForAsync("ari.test", r => r.RenewalWindowStart is not null);
        Assert.Equal(now + TimeSpan.FromMinutes(52), advised.RenewAfter); // the CA's time, not the one-third rule (~40 min)
        Assert.Equal(now + TimeSpan.FromMinutes(10), advised.RenewalInfoCheckAt);
        Assert.Equal(1, _advised.Questions);

        // The CA moves the window into the past (e.g. a revocation event): at the next question, renewal follows at once,
        // and the renewal names the certificate it replaces.
        _advised.Advice = new RenewalAdvice(now, now + TimeSpan.FromMinutes(5), now + TimeSpan.FromMinutes(1), now + TimeSpan.FromHours(6), null);
        _time.Advance(TimeSpan.FromMinutes(11));
        var renewed = await WaitForAsync("ari.test", r => r.Serial != advised.Serial);
        Assert.Equal(advised.ChainPem, _advised.LastReplaced);
        Assert.NotEqual(PublicKey(advised), PublicKey(renewed));
    }

    [Theory]
    [InlineData("ec384", "1.2.840.10045.2.1", 384)]
    [InlineData("rsa2048", "1.2.840.113549.1.1.1", 2048)]
    [InlineData("rsa3072", "1.2.840.113549.1.1.1", 3072)]
    public async Task KeyType_IsTheSitesChoice_AndAChangeReissues(string keyType, string algorithm, int bits)
    {
        Assert.Empty(await _sites.PutAsync(Site("keys.test"), "site", default));
        var first = await WaitForAsync("keys.test", r => r.HasChain);
        Assert.Null(first.KeyType);

        Assert.Empty(await _sites.PutAsync(Site("keys.test") with { KeyType = keyType }, "site", default));
        var changed = await WaitForAsync("keys.test", r => r.KeyType == keyType);

        using var leaf = X509Certificate2.CreateFromPem(changed.ChainPem);
        Assert.Equal(algorithm, leaf.GetKeyAlgorithm());
        Assert.Equal(bits, (int?)leaf.GetRSAPublicKey()?.KeySize ?? leaf.GetECDsaPublicKey()!.KeySize);
    }

    /// <summary>The real local CA, with renewal advice scripted by the test (a fake for RFC 9773, which the local CA
    /// does not speak; the ACME client's own renewalInfo is tested against the fake ACME server).</summary>
    private sealed class ScriptedAdviceIssuer(LocalCertificateAuthority inner) : ICertificateIssuer, IRenewalInfoSource
    {
        public RenewalAdvice? Advice { get; set; }

        public int Questions { get; private set; }

        public string? LastReplaced { get; private set; }

        public string Name => "advised";

        public Task<IssuedChain> IssueAsync(IssuanceRequest request, CancellationToken cancellationToken)
        {
            LastReplaced = request.PreviousChainPem;
            return inner.IssueAsync(request, cancellationToken);
        }

        public Task<RenewalAdvice?> GetRenewalAdviceAsync(string chainPem, CancellationToken cancellationToken)
        {
            Questions++;
            return Task.FromResult(Advice);
        }
    }

    private static SiteDefinition Site(params string[] hosts) => new() { Id = hosts[0], Hosts = hosts, Backends = ["http://127.0.0.1:1"] };

    private static string PublicKey(CertificateRecord record) =>
        Convert.ToHexString(X509Certificate2.CreateFromPem(record.ChainPem).GetECDsaPublicKey()!.ExportSubjectPublicKeyInfo());

    private async Task<CertificateRecord?> ReadAsync(string id) =>
        await _store.GetAsync(StoreKeys.Certificate(id)) is { } entry ? CoreJson.Deserialize<CertificateRecord>(entry) : null;

    private async Task<CertificateRecord> WaitForAsync(string id, Func<CertificateRecord, bool> condition)
    {
        CertificateRecord? record = null;
        Assert.True(await EventuallyAsync(async () => (record = await ReadAsync(id)) is not null && condition(record)), $"'{id}' never reached the expected state; last: {record}");
        return record!;
    }

    private static async Task<bool> EventuallyAsync(Func<Task<bool>> condition)
    {
        for (var i = 0; i < 400; i++)
        {
            if (await condition())
            {
                return true;
            }

            await Task.Delay(25);
        }

        return false;
    }
}
