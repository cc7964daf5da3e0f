using Gatehouse.Acme;

namespace Gatehouse.IntegrationTests.Acme;

/// <summary>Account life cycle against a real Pebble (5 % badNonce on).</summary>
[Collection(AcmeCollection.Name)]
public sealed class AcmeAccountTests(PebbleFixture fixture) : IClassFixture<PebbleFixture>, IDisposable
{
    private readonly AcmeTestKit _kit = new(fixture.Pebble);

    [Fact]
    public async Task GetDirectory_Pebble_HasEndpointsAndTermsOfService()
    {
        var directory = await _kit.Client.GetDirectoryAsync(CancellationToken.None);

        Assert.Equal("https", directory.NewOrder.Scheme);
        Assert.NotNull(directory.KeyChange);
        Assert.NotNull(directory.RevokeCert);
        Assert.NotNull(directory.Meta.TermsOfService);
        Assert.False(directory.Meta.ExternalAccountRequired);
        Assert.Null(directory.RenewalInfo);
        Assert.Same(directory, await _kit.Client.GetDirectoryAsync(CancellationToken.None));
    }

    [Theory]
    [InlineData(AcmeKeyAlgorithm.Es256)]
    [InlineData(AcmeKeyAlgorithm.Es384)]
    [InlineData(AcmeKeyAlgorithm.Rs256)]
    public async Task CreateAccount_EachKeyAlgorithm_CreatesThenFindsTheSameAccount(AcmeKeyAlgorithm algorithm)
    {
        using var kit = new AcmeTestKit(fixture.Pebble, algorithm: algorithm);
        Assert.Null(await kit.Client.FindAccountAsync(kit.Key, CancellationToken.None));

        var created = await kit.Client.CreateAccountAsync(kit.Key, kit.Session.Registration, CancellationToken.None);
        var found = await kit.Client.FindAccountAsync(kit.Key, CancellationToken.None);
        var again = await kit.Client.CreateAccountAsync(kit.Key, kit.Session.Registration, CancellationToken.None);

        Assert.Equal(AcmeAccountStatus.Valid, created.Status);
        Assert.Equal(["mailto:ops@example.test"], created.Contact);
        Assert.Equal(created.Url, found?.Url);
        Assert.Equal(created.Url, again.Url);
        Assert.Contains(kit.Logs, line => line.StartsWith("7001 ", StringComparison.Ordinal) && line.Contains("found", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Session_FirstRequest_RegistersAndReportsTheAccount()
    {
        var reported = new List<AcmeAccount>();
        var session = new AcmeAccountSession(_kit.Client, _kit.Key, _kit.Session.Registration)
        {
            AccountRegistered = (account, _) =>
            {
                reported.Add(account);
                return Task.CompletedTask;
            },
        };

        var account = await session.GetAccountAsync(CancellationToken.None);

        Assert.Equal(session.AccountUrl, account.Url);
        Assert.Equal(account.Url, Assert.Single(reported).Url);
    }

    [Fact]
    public async Task UpdateContact_NewAddress_TheCaKeepsIt()
    {
        await _kit.Session.EnsureAccountAsync(CancellationToken.None);

        var updated = await _kit.Session.UpdateContactAsync(["mailto:new@example.test"], CancellationToken.None);
        var fetched = await _kit.Session.GetAccountAsync(CancellationToken.None);

        Assert.Equal(["mailto:new@example.test"], updated.Contact);
        Assert.Equal(["mailto:new@example.test"], fetched.Contact);
    }

    [Fact]
    public async Task ChangeKey_ToAnotherAlgorithm_NewKeyWorksAndTheOldKeyIsRefused()
    {
        var accountUrl = await _kit.Session.EnsureAccountAsync(CancellationToken.None);
        using var newKey = AcmeAccountKey.Create(AcmeKeyAlgorithm.Es384);

        var account = await _kit.Session.ChangeKeyAsync(newKey, CancellationToken.None);

        Assert.Equal(accountUrl, account.Url);
        Assert.Same(newKey, _kit.Session.Key);
        var (chain, certificateKey) = await _kit.IssueAsync([AcmeTestKit.UniqueName("rolled")]);
        certificateKey.Dispose();
        Assert.NotEmpty(chain.Pem);
        Assert.Equal(accountUrl, (await _kit.Client.FindAccountAsync(newKey, CancellationToken.None))?.Url);

        Assert.Null(await _kit.Client.FindAccountAsync(_kit.Key, CancellationToken.None));
        var oldSession = new AcmeAccountSession(_kit.Client, _kit.Key, _kit.Session.Registration, accountUrl) { ReRegisterWhenForgotten = false };
        var refused = await Assert.ThrowsAsync<AcmeException>(() => oldSession.GetAccountAsync(CancellationToken.None));
        Assert.False(refused.IsRetryable, refused.Message);
    }

    [Fact]
    public async Task Deactivate_Account_LaterRequestsAreRefused()
    {
        await _kit.Session.EnsureAccountAsync(CancellationToken.None);

        var account = await _kit.Session.DeactivateAsync(CancellationToken.None);

        Assert.Equal(AcmeAccountStatus.Deactivated, account.Status);
        var refused = await Assert.ThrowsAsync<AcmeException>(() => _kit.Session.CreateOrderAsync(AcmeOrderRequest.ForNames([AcmeTestKit.UniqueName()]), CancellationToken.None));
        Assert.True(refused.Problem.Is(AcmeErrors.Unauthorized), refused.Message);
        Assert.False(refused.IsRetryable);
    }

    public void Dispose() => _kit.Dispose();
}
