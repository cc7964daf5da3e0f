using System.Security.Cryptography.X509Certificates;
using Gatehouse.Acme;
using Gatehouse.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Gatehouse.IntegrationTests.Acme;

/// <summary>Pebble's faults and restarts, and TLS-ALPN-01 with the library's own challenge certificate. Each test
/// starts its own Pebble.</summary>
[Collection(AcmeCollection.Name)]
public sealed class AcmeResilienceTests(ITestOutputHelper output)
{
    [Fact]
    public async Task IssueCertificate_HalfTheNoncesRejected_EveryCertificateIsIssued()
    {
        await using var pebble = await Pebble.StartAsync(new PebbleOptions { NonceRejectPercent = 50 });
        // At 50 % a request fails after n retries with probability 2^-(n+1): the default 5 would lose about one
        // request in 64, so this run allows 25 (one in 67 million). Real CAs reject a nonce only when it expired.
        using var kit = new AcmeTestKit(pebble, new AcmeClientOptions { BadNonceRetries = 25 });

        var chains = new List<AcmeCertificateChain>();
        for (var round = 0; round < 3; round++)
        {
            var issued = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => kit.IssueAsync([AcmeTestKit.UniqueName("stress"), AcmeTestKit.UniqueName("stress")])));
            foreach (var (chain, key) in issued)
            {
                key.Dispose();
                chains.Add(chain);
            }
        }

        Assert.Equal(12, chains.Select(c => c.SerialNumber).Distinct(StringComparer.Ordinal).Count());
        var retries = kit.Logs.Count(line => line.StartsWith("7002 ", StringComparison.Ordinal));
        output.WriteLine($"12 certificates at 50 % badNonce: {retries} requests sent again");
        Assert.True(retries > 20, $"only {retries} badNonce retries");
    }

    [Fact]
    public async Task Session_PebbleRestarted_RegistersAgainAndIssues()
    {
        await using var pebble = await Pebble.StartAsync();
        using var kit = new AcmeTestKit(pebble);
        var registrations = new List<Uri>();
        var session = new AcmeAccountSession(kit.Client, kit.Key, kit.Session.Registration)
        {
            AccountRegistered = (account, _) =>
            {
                lock (registrations)
                {
                    registrations.Add(account.Url);
                }

                return Task.CompletedTask;
            },
        };
        var (before, key) = await kit.IssueAsync([AcmeTestKit.UniqueName("before")], session: session);
        key.Dispose();

        await pebble.RestartAsync();
        var (after, afterKey) = await kit.IssueAsync([AcmeTestKit.UniqueName("after")], session: session);
        afterKey.Dispose();

        Assert.Equal(2, registrations.Count);
        Assert.Contains(kit.Logs, line => line.StartsWith("7006 ", StringComparison.Ordinal));
        using var beforeLeaf = before.LoadLeaf();
        using var afterLeaf = after.LoadLeaf();
        Assert.NotEqual(beforeLeaf.Issuer, afterLeaf.Issuer);
        Assert.True(AcmeTestKit.BuildsTo(after, pebble.IssuingRoot));
        Assert.False(AcmeTestKit.BuildsTo(before, pebble.IssuingRoot));
    }

    [Fact]
    public async Task Session_PebbleRestartedWithoutReRegistration_AccountDoesNotExist()
    {
        await using var pebble = await Pebble.StartAsync();
        using var kit = new AcmeTestKit(pebble);
        var session = new AcmeAccountSession(kit.Client, kit.Key, kit.Session.Registration) { ReRegisterWhenForgotten = false };
        await session.EnsureAccountAsync(CancellationToken.None);

        await pebble.RestartAsync();
        var error = await Assert.ThrowsAsync<AcmeException>(() => session.CreateOrderAsync(AcmeOrderRequest.ForNames([AcmeTestKit.UniqueName()]), CancellationToken.None));

        Assert.True(error.Problem.Is(AcmeErrors.AccountDoesNotExist), error.Message);
        Assert.False(error.IsRetryable);
    }

    [Fact]
    public async Task IssueCertificate_TlsAlpn01WithTheLibrarysCertificate_PebbleValidatesIt()
    {
        await using var responder = new OwnCertificateTlsAlpn01Responder(Ports.Free());
        await using var pebble = await Pebble.StartAsync(new PebbleOptions { TlsAlpnPort = responder.Port });
        using var kit = new AcmeTestKit(pebble);
        var name = AcmeTestKit.UniqueName("own-alpn");

        var (chain, key) = await kit.IssueAsync([name], [responder]);
        key.Dispose();

        using var leaf = chain.LoadLeaf();
        Assert.Equal(name, leaf.GetNameInfo(X509NameType.DnsName, false));
        Assert.True(responder.Handshakes > 0);
    }
}
