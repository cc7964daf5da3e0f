using Gatehouse.Keys;

namespace Gatehouse.Tests.Keys;

public sealed class PassphraseKeyProviderTests
{
    private static readonly Argon2Cost Cheap = new(1024, 1, 1);

    [Fact]
    public void CreateThenOpen_DerivesTheSameKey_AndRecordsTheKdfParameters()
    {
        using var provider = new PassphraseKeyProvider("p", "correct horse battery staple"u8, "env X", Cheap);
        var created = provider.CreateVersion("ring-1", 3);
        var wrapped = created.Key.WrapKey(new byte[32], "ad"u8);
        created.Key.Dispose();

        using var again = new PassphraseKeyProvider("p", "correct horse battery staple"u8, "env X");
        using var opened = again.OpenVersion("ring-1", 3, created.Reference);

        Assert.True(opened.TryUnwrapKey(wrapped, "ad"u8, new byte[32]));
        Assert.StartsWith("argon2id;v=19;m=1024;t=1;p=1;salt=", created.Reference, StringComparison.Ordinal);
        Assert.DoesNotContain("horse", created.Reference, StringComparison.Ordinal);
    }

    [Fact]
    public void WrongPassphrase_IsNamedAsSuch_WithoutTheSecret()
    {
        using var provider = new PassphraseKeyProvider("p", "correct horse battery staple"u8, "env X", Cheap);
        var created = provider.CreateVersion("ring-1", 1);
        created.Key.Dispose();
        using var wrong = new PassphraseKeyProvider("p", "incorrect horse battery staple"u8, "environment variable GH_PASS");

        var error = Assert.Throws<MasterKeyException>(() => wrong.OpenVersion("ring-1", 1, created.Reference));

        Assert.Contains("wrong passphrase", error.Message, StringComparison.Ordinal);
        Assert.Contains("GH_PASS", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("horse", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AVersionIsBoundToItsRingAndNumber()
    {
        using var provider = new PassphraseKeyProvider("p", "correct horse battery staple"u8, "env X", Cheap);
        var created = provider.CreateVersion("ring-1", 1);
        created.Key.Dispose();

        Assert.Throws<MasterKeyException>(() => provider.OpenVersion("ring-1", 2, created.Reference));
        Assert.Throws<MasterKeyException>(() => provider.OpenVersion("ring-2", 1, created.Reference));
    }

    [Theory]
    [InlineData("")]
    [InlineData("argon2id")]
    [InlineData("argon2id;v=19;m=1024;t=1;p=1;salt=!!;check=AAAA")]
    [InlineData("argon2id;v=19;m=99999999;t=1;p=1;salt=AAAAAAAAAAAAAAAAAAAAAA==;check=AAAAAAAAAAAAAAAAAAAAAA==")]
    [InlineData("scrypt;n=1")]
    public void DamagedReference_IsAClearErrorNotACrash(string reference)
    {
        using var provider = new PassphraseKeyProvider("p", "correct horse battery staple"u8, "env X", Cheap);

        var error = Assert.Throws<MasterKeyException>(() => provider.OpenVersion("ring-1", 1, reference));

        Assert.Contains("not one provider 'p' (passphrase) wrote", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ShortPassphrase_IsRefused()
    {
        var error = Assert.Throws<MasterKeyException>(() => new PassphraseKeyProvider("p", "short"u8, "file '/run/x'"));
        Assert.Contains("at least 16", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DefaultCost_IsRfc9106SecondRecommendation()
    {
        using var provider = new PassphraseKeyProvider("p", "correct horse battery staple"u8, "env X");
        var created = provider.CreateVersion("ring-1", 1);
        created.Key.Dispose();

        Assert.Contains("m=65536;t=3;p=4;", created.Reference, StringComparison.Ordinal);
    }
}
