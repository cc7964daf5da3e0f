using System.Security.Cryptography;

namespace Gatehouse.Dns;

/// <summary>TSIG MAC algorithms (RFC 8945 §6). HMAC-MD5 and HMAC-SHA1 are left out on purpose.</summary>
public enum TsigAlgorithm
{
    HmacSha256,
    HmacSha512,
}

/// <summary>
/// A TSIG shared secret (RFC 8945) with its key name and algorithm. The secret is copied in, never handed out, and
/// zeroed on dispose; <see cref="ToString"/> shows the name and algorithm only.
/// </summary>
internal sealed class TsigKey : IDisposable
{
    private readonly byte[] _secret;
    private bool _disposed;

    /// <param name="name">The key's name as the server knows it (e.g. <c>gatehouse</c>; BIND's <c>key "gatehouse"</c>).</param>
    /// <param name="algorithm">The MAC algorithm the server has for that key.</param>
    /// <param name="secret">The decoded secret (BIND's <c>secret</c> is its base64).</param>
    public TsigKey(string name, TsigAlgorithm algorithm, ReadOnlySpan<byte> secret)
    {
        if (secret.IsEmpty)
        {
            throw new ArgumentException("a TSIG secret cannot be empty", nameof(secret));
        }

        Name = DnsName.Normalize(name, nameof(name)).ToLowerInvariant();
        Algorithm = algorithm;
        AlgorithmName = algorithm switch
        {
            TsigAlgorithm.HmacSha256 => "hmac-sha256.",
            TsigAlgorithm.HmacSha512 => "hmac-sha512.",
            _ => throw new ArgumentOutOfRangeException(nameof(algorithm), algorithm, "unsupported TSIG algorithm"),
        };
        _secret = secret.ToArray();
    }

    /// <summary>The key name, absolute and lowercase.</summary>
    public string Name { get; }

    public TsigAlgorithm Algorithm { get; }

    /// <summary>The algorithm's domain name on the wire (RFC 8945 §6).</summary>
    public string AlgorithmName { get; }

    /// <summary>The MAC length of <see cref="Algorithm"/>, in octets.</summary>
    public int MacLength => Algorithm == TsigAlgorithm.HmacSha256 ? 32 : 64;

    internal IncrementalHash CreateHmac()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return IncrementalHash.CreateHMAC(Algorithm == TsigAlgorithm.HmacSha256 ? HashAlgorithmName.SHA256 : HashAlgorithmName.SHA512, _secret);
    }

    public override string ToString() => $"TSIG key {Name} ({AlgorithmName[..^1]})";

    public void Dispose()
    {
        _disposed = true;
        CryptographicOperations.ZeroMemory(_secret);
    }
}
