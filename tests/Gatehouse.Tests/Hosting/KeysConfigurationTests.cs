using Gatehouse.Hosting;
using Gatehouse.Keys;

namespace Gatehouse.Tests.Hosting;

public sealed class KeysConfigurationTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    private (GatehouseOptions? Options, List<string> Errors) Load(string yaml, Dictionary<string, string?>? environment = null)
    {
        var path = Path.Combine(_directory.Path, "gatehouse.yaml");
        File.WriteAllText(path, yaml);
        var errors = new List<string>();
        return (new GatehouseConfiguration(path, [], environment ?? []).Load(errors), errors);
    }

    [Fact]
    public void NoKeysSection_MeansOneSoftwareKeyFileInTheDataDirectory_Rotating90Days()
    {
        var (options, errors) = Load("dataDirectory: ./d\n");

        Assert.Empty(errors);
        var keys = options!.EffectiveKeys;
        Assert.Equal("local", keys.Provider);
        Assert.Equal(TimeSpan.FromDays(90), keys.RotationPeriod);
        var provider = Assert.Single(keys.Providers);
        Assert.Equal((KeyProviderType.Software, Path.Combine(_directory.Path, "d", "master.key")), (provider.Type, provider.File));
    }

    [Fact]
    public void AllThreeProviderTypes_AreRead()
    {
        var (options, errors) = Load("""
            dataDirectory: ./d
            keys:
              provider: hsm
              rotationPeriod: 30d
              providers:
                local: {type: software}
                pass: {type: passphrase, passphraseEnv: GH_PASS}
                hsm: {type: pkcs11, library: /usr/lib/softhsm/libsofthsm2.so, token: gh, label: gh-master, pinFile: /run/secrets/pin}
            """);

        Assert.Empty(errors);
        var keys = options!.Keys!;
        Assert.Equal(("hsm", TimeSpan.FromDays(30)), (keys.Provider, keys.RotationPeriod));
        var hsm = keys.Providers.Single(p => p.Name == "hsm");
        Assert.Equal((KeyProviderType.Pkcs11, "gh", "gh-master", "/run/secrets/pin"), (hsm.Type, hsm.Token, hsm.Label, hsm.SecretFile));
        Assert.Equal("GH_PASS", keys.Providers.Single(p => p.Name == "pass").SecretEnvironmentVariable);
    }

    [Fact]
    public void SecretsInTheConfig_MissingFields_AndUnknownNames_AreEachReported()
    {
        var (options, errors) = Load("""
            keys:
              provider: nowhere
              rotationPeriod: often
              providers:
                hsm: {type: pkcs11, pin: "1234", library: x, token: t, label: l}
                pass: {type: passphrase}
                odd: {type: vault}
                bad: {type: software, colour: blue}
            """);

        Assert.Null(options);
        Assert.Contains(errors, e => e.Contains("keys:providers:hsm: secrets never go in the configuration", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("keys:providers:pass: give exactly one of passphraseEnv", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("keys:providers:odd:type: 'vault' is not a provider type", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("keys:providers:bad:colour: unknown key", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("keys:provider: 'nowhere' is not one of keys:providers", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("keys:rotationPeriod: 'often' is not a duration", StringComparison.Ordinal));
        Assert.DoesNotContain(errors, e => e.Contains("1234", StringComparison.Ordinal));
    }

    [Fact]
    public void RotationPeriodZero_TurnsAutomaticRotationOff()
    {
        var (options, errors) = Load("keys: {rotationPeriod: 0}\n");

        Assert.Empty(errors);
        Assert.Equal(TimeSpan.Zero, options!.EffectiveKeys.RotationPeriod);
    }

    [Fact]
    public void PassphraseFromAnUnsetVariable_OrAnEmptyFile_IsAClearStartError()
    {
        var empty = Path.Combine(_directory.Path, "empty");
        File.WriteAllText(empty, "\n");
        var unset = new KeysOptions { Provider = "p", Providers = [new KeyProviderOptions { Name = "p", Type = KeyProviderType.Passphrase, SecretEnvironmentVariable = "GH_UNSET" }] };
        var emptyFile = new KeysOptions { Provider = "p", Providers = [new KeyProviderOptions { Name = "p", Type = KeyProviderType.Passphrase, SecretFile = empty }] };

        var first = Assert.Throws<MasterKeyException>(() => KeyProviders.Open(unset, _ => null));
        var second = Assert.Throws<MasterKeyException>(() => KeyProviders.Open(emptyFile, _ => null));

        Assert.Contains("keys:providers:p: the passphrase is to come from environment variable GH_UNSET, which is not set", first.Message, StringComparison.Ordinal);
        Assert.Contains("is empty", second.Message, StringComparison.Ordinal);
    }
}
