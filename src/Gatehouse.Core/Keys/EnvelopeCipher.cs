using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Gatehouse.Keys;

/// <summary>
/// Seals secrets for the store: a fresh AES-256-GCM data key per secret, wrapped by the key ring's active master
/// key, bound to the store key of the record that holds it. See <see cref="Envelope"/> for the bytes.
/// </summary>
public sealed class EnvelopeCipher(IMasterKeyRing keyRing)
{
    private const int DataKeySize = 32;

    /// <summary>Encrypts <paramref name="plaintext"/> for the record stored at <paramref name="recordKey"/>.</summary>
    public byte[] Seal(string recordKey, ReadOnlySpan<byte> plaintext)
    {
        ArgumentException.ThrowIfNullOrEmpty(recordKey);
        var master = keyRing.Active;
        var header = Envelope.EncodeHeader(master.Id, master.Version);
        Span<byte> dataKey = stackalloc byte[DataKeySize];
        RandomNumberGenerator.Fill(dataKey);
        try
        {
            var wrapped = master.WrapKey(dataKey, Envelope.DataKeyAssociatedData(header, recordKey));
            if (wrapped.Length is 0 or > Envelope.MaxWrappedKeyLength)
            {
                throw new InvalidOperationException($"Master key '{master.Id}' v{master.Version} produced a wrapped key of {wrapped.Length} bytes.");
            }

            var envelope = new byte[header.Length + 2 + wrapped.Length + Envelope.NonceSize + Envelope.TagSize + plaintext.Length];
            header.CopyTo(envelope, 0);
            BinaryPrimitives.WriteUInt16BigEndian(envelope.AsSpan(header.Length), (ushort)wrapped.Length);
            wrapped.CopyTo(envelope, header.Length + 2);
            var rest = envelope.AsSpan(header.Length + 2 + wrapped.Length);
            var nonce = rest[..Envelope.NonceSize];
            RandomNumberGenerator.Fill(nonce);
            using var aes = new AesGcm(dataKey, Envelope.TagSize);
            aes.Encrypt(nonce, plaintext, rest[(Envelope.NonceSize + Envelope.TagSize)..], rest.Slice(Envelope.NonceSize, Envelope.TagSize), Envelope.PayloadAssociatedData(recordKey));
            return envelope;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    /// <summary>Reads which master key version wrapped an envelope's data key (the header only; nothing is
    /// authenticated). False when the bytes are not an envelope.</summary>
    public static bool TryReadKeyVersion(ReadOnlySpan<byte> sealedSecret, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? keyId, out uint keyVersion)
    {
        if (Envelope.TryParse(sealedSecret, out var envelope))
        {
            keyId = envelope.KeyId;
            keyVersion = envelope.KeyVersion;
            return true;
        }

        keyId = null;
        keyVersion = 0;
        return false;
    }

    /// <summary>Whether an envelope's data key is wrapped by the ring's active version.</summary>
    public bool IsCurrent(ReadOnlySpan<byte> sealedSecret) =>
        TryReadKeyVersion(sealedSecret, out var id, out var version) && id == keyRing.Active.Id && version == keyRing.Active.Version;

    /// <summary>
    /// Moves an envelope to the active master key version: unwraps its data key with the version that wrapped it and
    /// wraps it again with the active one. The payload's nonce, tag and ciphertext are kept byte for byte (their
    /// associated data does not cover the master key header), and the plaintext is never produced.
    /// </summary>
    /// <returns>The new envelope, or the same array when it is already wrapped by the active version.</returns>
    /// <exception cref="EnvelopeAuthenticationException">The envelope does not open (see <see cref="Open"/>).</exception>
    public byte[] Rewrap(string recordKey, byte[] sealedSecret)
    {
        ArgumentException.ThrowIfNullOrEmpty(recordKey);
        ArgumentNullException.ThrowIfNull(sealedSecret);
        var active = keyRing.Active;
        if (IsCurrent(sealedSecret))
        {
            return sealedSecret;
        }

        Span<byte> dataKey = stackalloc byte[DataKeySize];
        try
        {
            var envelope = Unwrap(recordKey, sealedSecret, dataKey);
            var header = Envelope.EncodeHeader(active.Id, active.Version);
            var wrapped = active.WrapKey(dataKey, Envelope.DataKeyAssociatedData(header, recordKey));
            if (wrapped.Length is 0 or > Envelope.MaxWrappedKeyLength)
            {
                throw new InvalidOperationException($"Master key '{active.Id}' v{active.Version} produced a wrapped key of {wrapped.Length} bytes.");
            }

            var payloadLength = Envelope.NonceSize + Envelope.TagSize + envelope.Ciphertext.Length;
            var result = new byte[header.Length + 2 + wrapped.Length + payloadLength];
            header.CopyTo(result, 0);
            BinaryPrimitives.WriteUInt16BigEndian(result.AsSpan(header.Length), (ushort)wrapped.Length);
            wrapped.CopyTo(result, header.Length + 2);
            sealedSecret.AsSpan(sealedSecret.Length - payloadLength).CopyTo(result.AsSpan(header.Length + 2 + wrapped.Length));
            return result;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    /// <summary>Decrypts a secret sealed for <paramref name="recordKey"/>. The caller owns the result and disposes it
    /// to zero the plaintext.</summary>
    /// <exception cref="EnvelopeAuthenticationException">The envelope is malformed, altered, sealed for another record,
    /// or wrapped by a master key version the ring does not hold.</exception>
    public PlaintextSecret Open(string recordKey, ReadOnlySpan<byte> sealedSecret)
    {
        ArgumentException.ThrowIfNullOrEmpty(recordKey);
        Span<byte> dataKey = stackalloc byte[DataKeySize];
        try
        {
            var envelope = Unwrap(recordKey, sealedSecret, dataKey);
            var plaintext = new byte[envelope.Ciphertext.Length];
            try
            {
                using var aes = new AesGcm(dataKey, Envelope.TagSize);
                aes.Decrypt(envelope.Nonce, envelope.Ciphertext, envelope.Tag, plaintext, Envelope.PayloadAssociatedData(recordKey));
            }
            catch (AuthenticationTagMismatchException)
            {
                CryptographicOperations.ZeroMemory(plaintext);
                throw new EnvelopeAuthenticationException(recordKey, "the payload does not authenticate (altered, or sealed for another record)");
            }

            return new PlaintextSecret(plaintext);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    /// <summary>Parses the envelope and unwraps its data key into <paramref name="dataKey"/>.</summary>
    private Envelope Unwrap(string recordKey, ReadOnlySpan<byte> sealedSecret, scoped Span<byte> dataKey)
    {
        if (!Envelope.TryParse(sealedSecret, out var envelope))
        {
            throw new EnvelopeAuthenticationException(recordKey, "the envelope is malformed or of an unknown format version");
        }

        if (!keyRing.TryGet(envelope.KeyId, envelope.KeyVersion, out var master))
        {
            throw new EnvelopeAuthenticationException(recordKey, keyRing.Describe(envelope.KeyId, envelope.KeyVersion));
        }

        if (!master.TryUnwrapKey(envelope.WrappedKey, Envelope.DataKeyAssociatedData(envelope.Header, recordKey), dataKey))
        {
            throw new EnvelopeAuthenticationException(recordKey, "the data key does not authenticate (altered, or sealed for another record or key)");
        }

        return envelope;
    }
}

/// <summary>A decrypted secret; disposing zeroes it.</summary>
public sealed class PlaintextSecret(byte[] bytes) : IDisposable
{
    private byte[]? _bytes = bytes;

    /// <summary>The plaintext, valid until disposed.</summary>
    public ReadOnlySpan<byte> Span => _bytes ?? throw new ObjectDisposedException(nameof(PlaintextSecret));

    /// <inheritdoc />
    public void Dispose()
    {
        if (_bytes is { } b)
        {
            CryptographicOperations.ZeroMemory(b);
            _bytes = null;
        }
    }
}

/// <summary>A sealed secret failed to authenticate. Names the record, never the content.</summary>
public sealed class EnvelopeAuthenticationException(string recordKey, string reason)
    : CryptographicException($"The sealed secret of '{recordKey}' cannot be opened: {reason}.")
{
    /// <summary>The store key of the record.</summary>
    public string RecordKey { get; } = recordKey;
}
