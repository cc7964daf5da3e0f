using System.Security.Cryptography.X509Certificates;
using Gatehouse.Acme;
using Gatehouse.IntegrationTests.Infrastructure;

namespace Gatehouse.IntegrationTests.Acme;

/// <summary>Pebble for the issuance tests: two alternate chains, and a blocked domain.</summary>
public sealed class IssuancePebbleFixture : PebbleFixture
{
    public const string BlockedDomain = "blocked.test";

    protected override PebbleOptions Options => new() { AlternateRoots = 2, DomainBlocklist = [BlockedDomain] };
}

/// <summary>Orders, challenges, finalization, chains and revocation against a real Pebble (5 % badNonce on).</summary>
[Collection(AcmeCollection.Name)]
public sealed class AcmeIssuanceTests(IssuancePebbleFixture fixture) : IClassFixture<IssuancePebbleFixture>, IDisposable
{
    private readonly AcmeTestKit _kit = new(fixture.Pebble);

    [Fact]
    public async Task IssueCertificate_ThirtyNamesByHttp01_OneCertificateCoversEveryName()
    {
        var names = Enumerable.Range(0, 30).Select(i => AcmeTestKit.UniqueName($"n{i}")).ToArray();

        var (chain, key) = await _kit.IssueAsync(names);
        using var _ = key;

        using var leaf = chain.LoadLeaf();
        var san = leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        Assert.Equal(names.Order(StringComparer.Ordinal), san.EnumerateDnsNames().Order(StringComparer.Ordinal));
        using var leafPublicKey = leaf.GetECDsaPublicKey()!;
        Assert.Equal(key.ExportSubjectPublicKeyInfo(), leafPublicKey.ExportSubjectPublicKeyInfo());
        Assert.True(chain.Pem.Split("-----BEGIN CERTIFICATE-----").Length >= 3, "the chain has the intermediate");
    }

    [Fact]
    public async Task IssueCertificate_WildcardByDns01_CoversTheWildcard()
    {
        var baseName = AcmeTestKit.UniqueName("wild");

        var (chain, key) = await _kit.IssueAsync(["*." + baseName, baseName], [_kit.Http01, _kit.Dns01]);
        using var _ = key;

        using var leaf = chain.LoadLeaf();
        var names = leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single().EnumerateDnsNames().ToArray();
        Assert.Contains("*." + baseName, names);
        Assert.Contains(baseName, names);
    }

    [Fact]
    public async Task IssueCertificate_WildcardWithOnlyHttp01Solver_FailsWithoutUsableChallenge()
    {
        var error = await Assert.ThrowsAsync<AcmeException>(() => _kit.IssueAsync(["*." + AcmeTestKit.UniqueName("wild")], [_kit.Http01]));

        Assert.Equal(AcmeProblem.NoUsableChallengeType, error.Problem.Type);
        Assert.False(error.IsRetryable);
        Assert.Contains("dns-01", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task IssueCertificate_TlsAlpn01ThroughChallTestSrv_Issues()
    {
        var name = AcmeTestKit.UniqueName("alpn");

        var (chain, key) = await _kit.IssueAsync([name], [new ChallTestSrvTlsAlpn01Solver(fixture.Pebble)]);
        using var _ = key;

        using var leaf = chain.LoadLeaf();
        Assert.Equal(name, leaf.GetNameInfo(X509NameType.DnsName, false));
    }

    [Fact]
    public async Task IssueCertificate_NothingPublished_FailsWithTheChallengeErrorForTheName()
    {
        var name = AcmeTestKit.UniqueName("unanswered");

        var error = await Assert.ThrowsAsync<AcmeException>(() => _kit.IssueAsync([name], [new SilentSolver()]));

        Assert.Equal(name, error.Problem.Identifier?.Value);
        Assert.StartsWith(AcmeProblem.AcmeErrorPrefix, error.Problem.Type, StringComparison.Ordinal);
        Assert.Contains(name, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DownloadCertificate_PreferredIssuer_ReturnsTheChainToThatRoot()
    {
        var roots = new Dictionary<string, X509Certificate2>(StringComparer.Ordinal);
        for (var i = 0; i < 3; i++)
        {
            var root = await fixture.Pebble.GetRootAsync(i);
            roots[root.GetNameInfo(X509NameType.SimpleName, false)] = root;
        }

        Assert.Equal(3, roots.Count);
        var (defaultChain, key) = await _kit.IssueAsync([AcmeTestKit.UniqueName()]);
        key.Dispose();
        Assert.Equal(2, defaultChain.AlternateUrls.Count);

        Assert.True(AcmeTestKit.BuildsTo(defaultChain, roots[defaultChain.RootIssuerName]));
        var wanted = roots.Keys.First(r => !defaultChain.ChainsTo(r));
        var (chosen, chosenKey) = await _kit.IssueAsync([AcmeTestKit.UniqueName()], preferredIssuer: wanted);
        chosenKey.Dispose();

        Assert.True(chosen.ChainsTo(wanted), $"chain ends at '{chosen.RootIssuerName}', wanted '{wanted}'");
        Assert.Equal(wanted, chosen.RootIssuerName);
        Assert.True(AcmeTestKit.BuildsTo(chosen, roots[wanted]));
        Assert.False(AcmeTestKit.BuildsTo(chosen, roots[defaultChain.RootIssuerName]));
        foreach (var root in roots.Values)
        {
            root.Dispose();
        }
    }

    [Fact]
    public async Task DownloadCertificate_UnknownPreferredIssuer_KeepsTheDefaultChain()
    {
        var (chain, key) = await _kit.IssueAsync([AcmeTestKit.UniqueName()], preferredIssuer: "No Such Root");
        key.Dispose();

        Assert.StartsWith("Pebble Root CA", chain.RootIssuerName, StringComparison.Ordinal);
        Assert.Contains(_kit.Logs, line => line.StartsWith("7011 ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RevokeCertificate_ByAccountKey_PebbleShowsItRevokedWithTheReason()
    {
        var (chain, key) = await _kit.IssueAsync([AcmeTestKit.UniqueName()]);
        key.Dispose();
        using var leaf = chain.LoadLeaf();
        Assert.Equal("Valid", (await fixture.Pebble.GetCertificateStatusAsync(chain.SerialNumber)).Status);

        await _kit.Session.RevokeCertificateAsync(leaf, AcmeRevocationReason.Superseded, CancellationToken.None);

        Assert.Equal(("Revoked", (int?)(int)AcmeRevocationReason.Superseded), await fixture.Pebble.GetCertificateStatusAsync(chain.SerialNumber));
    }

    [Fact]
    public async Task RevokeCertificate_ByCertificateKey_PebbleShowsItRevoked()
    {
        var (chain, key) = await _kit.IssueAsync([AcmeTestKit.UniqueName()]);
        using var _ = key;
        using var leaf = chain.LoadLeaf();

        // Another client, no account at all: the certificate's key is the proof.
        using var http = fixture.Pebble.CreateHttpClient();
        var stranger = new AcmeClient(http, fixture.Pebble.DirectoryUrl);
        await stranger.RevokeCertificateAsync(leaf, key, AcmeRevocationReason.KeyCompromise, CancellationToken.None);

        Assert.Equal(("Revoked", (int?)(int)AcmeRevocationReason.KeyCompromise), await fixture.Pebble.GetCertificateStatusAsync(chain.SerialNumber));
        var again = await Assert.ThrowsAsync<AcmeException>(() => stranger.RevokeCertificateAsync(leaf, key, null, CancellationToken.None));
        Assert.True(again.Problem.Is(AcmeErrors.AlreadyRevoked), again.Message);
    }

    [Fact]
    public async Task CreateOrder_BlockedDomain_RejectedIdentifierNotRetryable()
    {
        var name = "www." + IssuancePebbleFixture.BlockedDomain;

        var error = await Assert.ThrowsAsync<AcmeException>(() => _kit.IssueAsync([name]));

        Assert.True(error.Problem.Is(AcmeErrors.RejectedIdentifier), error.Message);
        Assert.False(error.IsRetryable);
        Assert.Contains(IssuancePebbleFixture.BlockedDomain, error.Message, StringComparison.Ordinal);
    }

    public void Dispose() => _kit.Dispose();

    /// <summary>Publishes nothing, so validation fails.</summary>
    private sealed class SilentSolver : IAcmeChallengeSolver
    {
        public string ChallengeType => AcmeChallenge.Http01;

        public Task PrepareAsync(AcmeChallengeAnswer answer, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task CleanupAsync(AcmeChallengeAnswer answer, CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
