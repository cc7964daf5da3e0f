using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Org.BouncyCastle.Crypto.Generators;
using Org.BouncyCastle.Crypto.Parameters;

namespace Gatehouse.Keys;

/// <summary>
/// Master key versions derived from a passphrase (given by an environment variable or a file, for secret managers)
/// with Argon2id (RFC 9106). Each version has its own random salt; the key ring records the KDF, its parameters,
/// the salt and a check value that tells a wrong passphrase from a damaged record. Nothing is stored that opens a
/// version without the passphrase.
/// </summary>
public sealed class PassphraseKeyProvider : IMasterKeyProvider
{
    /// <summary>RFC 9106 §4, second recommended option: 64 MiB, 3 passes, 4 lanes.</summary>
    public static readonly Argon2Cost DefaultCost = new(65536, 3, 4);

    private const int SaltSize = 16;
    private const int CheckSize = 16;
    private readonly byte[] _passphrase;
    private readonly string _source;
    private readonly Argon2Cost _cost;
    private int _disposed;

    /// <param name="name">The provider's name in the configuration.</param>
    /// <param name="passphrase">The passphrase; this object takes a copy, the caller zeroes its own.</param>
    /// <param name="source">Where the passphrase came from, for error messages (an environment variable's or file's name).</param>
    /// <param name="cost">Argon2id cost for new versions (existing versions use the cost the ring recorded).</param>
    public PassphraseKeyProvider(string name, ReadOnlySpan<byte> passphrase, string source, Argon2Cost? cost = null)
    {
        if (passphrase.Length < 16)
        {
            throw new MasterKeyException($"The passphrase from {source} has {passphrase.Length} bytes; a master key passphrase has at least 16.");
        }

        Name = name;
        _source = source;
        _cost = cost ?? DefaultCost;
        _passphrase = GC.AllocateUninitializedArray<byte>(passphrase.Length, pinned: true);
        passphrase.CopyTo(_passphrase);
    }

    public string Name { get; }

    public string Kind => "passphrase";

    public string? BootstrapReference => null;

    public MasterKeyVersion CreateVersion(string ringId, uint version)
    {
        var salt = RandomNumberGenerator.GetBytes(SaltSize);
        var key = Derive(_cost, salt);
        try
        {
            var check = Check(key, ringId, version);
            var reference = string.Create(CultureInfo.InvariantCulture,
                $"argon2id;v=19;m={_cost.MemoryKiB};t={_cost.Iterations};p={_cost.Lanes};salt={Convert.ToBase64String(salt)};check={Convert.ToBase64String(check)}");
            return new MasterKeyVersion(new SoftwareMasterKey(ringId, version, key), reference);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    public IMasterKey OpenVersion(string ringId, uint version, string reference)
    {
        if (!TryParse(reference, out var cost, out var salt, out var check))
        {
            throw new MasterKeyException($"The key ring's reference for master key version {version} is not one provider '{Name}' (passphrase) wrote.");
        }

        var key = Derive(cost, salt);
        try
        {
            if (!CryptographicOperations.FixedTimeEquals(Check(key, ringId, version), check))
            {
                throw new MasterKeyException($"The passphrase from {_source} does not open master key version {version} of key ring '{ringId}' (wrong passphrase).");
            }

            return new SoftwareMasterKey(ringId, version, key);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    public void DestroyVersion(string ringId, uint version, string reference)
    {
        // The salt in the ring is needed to derive the key again; the ring forgets it.
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            CryptographicOperations.ZeroMemory(_passphrase);
        }
    }

    private byte[] Derive(Argon2Cost cost, byte[] salt)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var parameters = new Argon2Parameters.Builder(Argon2Parameters.Argon2id)
            .WithVersion(Argon2Parameters.Version13)
            .WithMemoryAsKB(cost.MemoryKiB)
            .WithIterations(cost.Iterations)
            .WithParallelism(cost.Lanes)
            .WithSalt(salt)
            .Build();
        var generator = new Argon2BytesGenerator();
        generator.Init(parameters);
        var key = new byte[SoftwareMasterKey.KeySize];
        generator.GenerateBytes(_passphrase, key);
        return key;
    }

    private static byte[] Check(byte[] key, string ringId, uint version)
    {
        var mac = HMACSHA256.HashData(key, Encoding.ASCII.GetBytes($"gatehouse-passphrase-check-v1|{ringId}|{version}"));
        return mac[..CheckSize];
    }

    private static bool TryParse(string reference, out Argon2Cost cost, out byte[] salt, out byte[] check)
    {
        cost = DefaultCost;
        salt = check = [];
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        var parts = reference.Split(';');
        if (parts.Length == 0 || parts[0] != "argon2id")
        {
            return false;
        }

        foreach (var part in parts.Skip(1))
        {
            var eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                return false;
            }

            fields[part[..eq]] = part[(eq + 1)..];
        }

        try
        {
            if (fields.GetValueOrDefault("v") != "19"
                || !int.TryParse(fields.GetValueOrDefault("m"), NumberStyles.None, CultureInfo.InvariantCulture, out var m)
                || !int.TryParse(fields.GetValueOrDefault("t"), NumberStyles.None, CultureInfo.InvariantCulture, out var t)
                || !int.TryParse(fields.GetValueOrDefault("p"), NumberStyles.None, CultureInfo.InvariantCulture, out var p)
                || m is < 8 or > 4 * 1024 * 1024 || t is < 1 or > 64 || p is < 1 or > 64)
            {
                return false;
            }

            cost = new Argon2Cost(m, t, p);
            salt = Convert.FromBase64String(fields.GetValueOrDefault("salt") ?? "");
            check = Convert.FromBase64String(fields.GetValueOrDefault("check") ?? "");
            return salt.Length >= 8 && check.Length == CheckSize;
        }
        catch (FormatException)
        {
            return false;
        }
    }
}

/// <summary>Argon2id cost parameters (RFC 9106): memory in KiB, passes, lanes.</summary>
public readonly record struct Argon2Cost(int MemoryKiB, int Iterations, int Lanes);
