using System.Buffers.Text;
using System.Security.Cryptography;
using Gatehouse.Acme;
using Gatehouse.IntegrationTests.Infrastructure;

namespace Gatehouse.IntegrationTests.Acme;

/// <summary>Pebble that requires external account binding, with one key id.</summary>
public sealed class EabPebbleFixture : PebbleFixture
{
    public const string KeyId = "gatehouse-test-kid";

    public static readonly string MacKey = Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));

    protected override PebbleOptions Options => new() { ExternalAccountMacKeys = new Dictionary<string, string> { [KeyId] = MacKey } };
}

/// <summary>External account binding (RFC 8555 §7.3.4) against a Pebble that requires it.</summary>
[Collection(AcmeCollection.Name)]
public sealed class AcmeExternalAccountBindingTests(EabPebbleFixture fixture) : IClassFixture<EabPebbleFixture>
{
    [Fact]
    public async Task CreateAccount_RightEabKey_IssuesACertificate()
    {
        using var binding = AcmeExternalAccountBinding.FromBase64Url(EabPebbleFixture.KeyId, EabPebbleFixture.MacKey);
        using var kit = new AcmeTestKit(fixture.Pebble, registration: new AcmeAccountRegistration { TermsOfServiceAgreed = true, ExternalAccountBinding = binding });

        var directory = await kit.Client.GetDirectoryAsync(CancellationToken.None);
        var (chain, key) = await kit.IssueAsync([AcmeTestKit.UniqueName("eab")]);
        key.Dispose();

        Assert.True(directory.Meta.ExternalAccountRequired);
        Assert.NotEmpty(chain.Pem);
    }

    [Fact]
    public async Task CreateAccount_WrongEabKey_FailsClearlyAndNotRetryable()
    {
        using var binding = new AcmeExternalAccountBinding(EabPebbleFixture.KeyId, RandomNumberGenerator.GetBytes(32));
        using var kit = new AcmeTestKit(fixture.Pebble, registration: new AcmeAccountRegistration { TermsOfServiceAgreed = true, ExternalAccountBinding = binding });

        var error = await Assert.ThrowsAsync<AcmeException>(() => kit.Session.EnsureAccountAsync(CancellationToken.None));

        Assert.False(error.IsRetryable);
        Assert.StartsWith(AcmeProblem.AcmeErrorPrefix, error.Problem.Type, StringComparison.Ordinal);
        Assert.False(string.IsNullOrEmpty(error.Problem.Detail));
        Assert.DoesNotContain(EabPebbleFixture.MacKey, error.Message, StringComparison.Ordinal);
        Assert.Null(kit.Session.AccountUrl);
    }

    [Fact]
    public async Task CreateAccount_UnknownEabKeyId_FailsNotRetryable()
    {
        using var binding = AcmeExternalAccountBinding.FromBase64Url("no-such-kid", EabPebbleFixture.MacKey);
        using var kit = new AcmeTestKit(fixture.Pebble, registration: new AcmeAccountRegistration { TermsOfServiceAgreed = true, ExternalAccountBinding = binding });

        var error = await Assert.ThrowsAsync<AcmeException>(() => kit.Session.EnsureAccountAsync(CancellationToken.None));

        Assert.False(error.IsRetryable, error.Message);
    }

    [Fact]
    public async Task CreateAccount_NoEab_ExternalAccountRequired()
    {
        using var kit = new AcmeTestKit(fixture.Pebble);

        var error = await Assert.ThrowsAsync<AcmeException>(() => kit.Session.EnsureAccountAsync(CancellationToken.None));

        Assert.True(error.Problem.Is(AcmeErrors.ExternalAccountRequired), error.Message);
        Assert.False(error.IsRetryable);
    }
}
