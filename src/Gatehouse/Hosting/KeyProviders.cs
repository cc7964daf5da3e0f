using System.Security.Cryptography;
using System.Text;
using Gatehouse.Keys;
using Gatehouse.Keys.Pkcs11;

namespace Gatehouse.Hosting;

/// <summary>Builds the configured master key providers, reading their secrets from where the configuration says.</summary>
internal static class KeyProviders
{
    /// <summary>Opens every provider; on failure nothing stays open.</summary>
    /// <exception cref="MasterKeyException">A provider cannot be opened; the message names it and the cause.</exception>
    public static Dictionary<string, IMasterKeyProvider> Open(KeysOptions options, Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        var providers = new Dictionary<string, IMasterKeyProvider>(StringComparer.Ordinal);
        try
        {
            foreach (var provider in options.Providers)
            {
                providers.Add(provider.Name, Open(provider, environment));
            }

            return providers;
        }
        catch
        {
            foreach (var provider in providers.Values)
            {
                provider.Dispose();
            }

            throw;
        }
    }

    private static IMasterKeyProvider Open(KeyProviderOptions options, Func<string, string?> environment)
    {
        switch (options.Type)
        {
            case KeyProviderType.Software:
                return SoftwareKeyFileProvider.OpenOrCreate(options.Name, options.File!);
            case KeyProviderType.Passphrase:
            {
                var (secret, source) = ReadSecret(options, environment, "passphrase");
                try
                {
                    return new PassphraseKeyProvider(options.Name, secret, source);
                }
                finally
                {
                    CryptographicOperations.ZeroMemory(secret);
                }
            }

            case KeyProviderType.Pkcs11:
            {
                var (secret, _) = ReadSecret(options, environment, "PIN");
                try
                {
                    return Pkcs11Factory(options, Encoding.UTF8.GetString(secret));
                }
                finally
                {
                    CryptographicOperations.ZeroMemory(secret);
                }
            }

            default:
                throw new MasterKeyException($"{options.ConfigPath}: unknown provider type {options.Type}.");
        }
    }

    private static Pkcs11MasterKeyProvider Pkcs11Factory(KeyProviderOptions options, string pin) => new(new Pkcs11Options
    {
        Name = options.Name,
        LibraryPath = options.Library!,
        TokenLabel = options.Token!,
        KeyLabel = options.Label!,
        Pin = pin,
    });

    private static (byte[] Secret, string Source) ReadSecret(KeyProviderOptions options, Func<string, string?> environment, string what) =>
        ReadSecret(options.ConfigPath, options.SecretEnvironmentVariable, options.SecretFile, environment, what);

    /// <summary>Reads a secret from the environment variable or file the configuration names (a trailing newline is
    /// dropped); the caller zeroes it.</summary>
    /// <exception cref="MasterKeyException">It is not set, empty or unreadable; the message names where it was looked for.</exception>
    internal static (byte[] Secret, string Source) ReadSecret(string configPath, string? environmentVariable, string? file, Func<string, string?> environment, string what)
    {
        if (environmentVariable is { } variable)
        {
            var value = environment(variable);
            if (string.IsNullOrEmpty(value))
            {
                throw new MasterKeyException($"{configPath}: the {what} is to come from environment variable {variable}, which is not set or empty.");
            }

            return (Encoding.UTF8.GetBytes(value), $"environment variable {variable}");
        }

        var path = file!;
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new MasterKeyException($"{configPath}: cannot read the {what} file '{path}': {ex.Message}", ex);
        }

        var length = bytes.Length;
        while (length > 0 && bytes[length - 1] is (byte)'\n' or (byte)'\r')
        {
            length--;
        }

        if (length == 0)
        {
            throw new MasterKeyException($"{configPath}: the {what} file '{path}' is empty.");
        }

        var secret = bytes[..length];
        CryptographicOperations.ZeroMemory(bytes);
        return (secret, $"file '{path}'");
    }
}
