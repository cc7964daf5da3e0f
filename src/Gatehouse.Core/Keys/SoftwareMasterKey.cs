using System.Security.Cryptography;

namespace Gatehouse.Keys;

/// <summary>A master key held in process memory: AES-256-GCM key wrapping (nonce 12 | wrapped key | tag 16).</summary>
/// <remarks>
/// <see cref="AesGcm"/> instances are not safe for concurrent use, so each call makes its own; the key bytes live in
/// a pinned array (never copied by the GC) that is zeroed on dispose.
/// </remarks>
public sealed class SoftwareMasterKey : IMasterKey
{
    public const int KeySize = 32;
    private const int NonceSize = 12;
    private const int TagSize = 16;

    private readonly byte[] _key;
    private int _disposed;

    /// <summary>Takes a copy of <paramref name="key"/>; the caller zeroes its own copy.</summary>
    public SoftwareMasterKey(string id, uint version, ReadOnlySpan<byte> key)
    {
        if (key.Length != KeySize)
        {
            throw new ArgumentException($"A software master key has {KeySize} bytes.", nameof(key));
        }

        _ = Envelope.EncodeHeader(id, version); // validates the id
        Id = id;
        Version = version;
        _key = GC.AllocateUninitializedArray<byte>(KeySize, pinned: true);
        key.CopyTo(_key);
    }

    public string Id { get; }

    public uint Version { get; }

    public byte[] WrapKey(ReadOnlySpan<byte> dataKey, ReadOnlySpan<byte> associatedData)
    {
        var wrapped = new byte[NonceSize + dataKey.Length + TagSize];
        var nonce = wrapped.AsSpan(0, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = CreateCipher();
        aes.Encrypt(nonce, dataKey, wrapped.AsSpan(NonceSize, dataKey.Length), wrapped.AsSpan(NonceSize + dataKey.Length), associatedData);
        return wrapped;
    }

    public bool TryUnwrapKey(ReadOnlySpan<byte> wrappedKey, ReadOnlySpan<byte> associatedData, Span<byte> dataKey)
    {
        if (wrappedKey.Length != NonceSize + dataKey.Length + TagSize)
        {
            return false;
        }

        try
        {
            using var aes = CreateCipher();
            aes.Decrypt(wrappedKey[..NonceSize], wrappedKey.Slice(NonceSize, dataKey.Length), wrappedKey[^TagSize..], dataKey, associatedData);
            return true;
        }
        catch (AuthenticationTagMismatchException)
        {
            CryptographicOperations.ZeroMemory(dataKey);
            return false;
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            CryptographicOperations.ZeroMemory(_key);
        }
    }

    private AesGcm CreateCipher()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        return new AesGcm(_key, TagSize);
    }
}
