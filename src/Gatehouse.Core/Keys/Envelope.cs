using System.Buffers.Binary;
using System.Text;

namespace Gatehouse.Keys;

/// <summary>
/// The envelope wire format, version 1 (all integers big-endian):
/// <code>
/// offset      size  field
/// 0           1     format version = 0x01
/// 1           1     n = length of the master key id (1..64)
/// 2           n     master key id (ASCII [A-Za-z0-9._-])
/// 2+n         4     master key version
/// 6+n         2     w = length of the wrapped data key (1..1024)
/// 8+n         w     wrapped data key (provider-specific; software: nonce 12 | ciphertext 32 | tag 16)
/// 8+n+w       12    payload nonce
/// 20+n+w      16    payload tag
/// 36+n+w      rest  payload ciphertext (AES-256-GCM under the data key)
/// </code>
/// The data key is wrapped with associated data <c>"gatehouse-dek-v1" ‖ bytes[0, 6+n) ‖ record key</c>, which
/// authenticates the version, the master key id and version, and binds the key to its record. The payload is
/// encrypted with associated data <c>"gatehouse-payload-v1" ‖ 0x01 ‖ record key</c>: it does not cover the master key
/// header, so a rewrap replaces header and wrapped key and leaves the payload bytes as they are.
/// </summary>
internal readonly ref struct Envelope
{
    public const byte FormatVersion = 1;
    public const int MaxKeyIdLength = 64;
    public const int MaxWrappedKeyLength = 1024;
    public const int NonceSize = 12;
    public const int TagSize = 16;

    private static ReadOnlySpan<byte> DataKeyLabel => "gatehouse-dek-v1"u8;

    private static ReadOnlySpan<byte> PayloadLabel => "gatehouse-payload-v1"u8;

    public string KeyId { get; init; }

    public uint KeyVersion { get; init; }

    /// <summary>Bytes [0, 6+n): what the data key's associated data authenticates.</summary>
    public ReadOnlySpan<byte> Header { get; init; }

    public ReadOnlySpan<byte> WrappedKey { get; init; }

    public ReadOnlySpan<byte> Nonce { get; init; }

    public ReadOnlySpan<byte> Tag { get; init; }

    public ReadOnlySpan<byte> Ciphertext { get; init; }

    /// <summary>Parses the structure (not the cryptography). Never throws.</summary>
    public static bool TryParse(ReadOnlySpan<byte> data, out Envelope envelope)
    {
        envelope = default;
        if (data.Length < 2 || data[0] != FormatVersion)
        {
            return false;
        }

        int n = data[1];
        if (n is 0 or > MaxKeyIdLength || data.Length < 8 + n)
        {
            return false;
        }

        var id = data.Slice(2, n);
        if (!IsValidKeyId(id))
        {
            return false;
        }

        var version = BinaryPrimitives.ReadUInt32BigEndian(data.Slice(2 + n, 4));
        int w = BinaryPrimitives.ReadUInt16BigEndian(data.Slice(6 + n, 2));
        if (w is 0 or > MaxWrappedKeyLength || data.Length < 8 + n + w + NonceSize + TagSize)
        {
            return false;
        }

        var rest = data[(8 + n + w)..];
        envelope = new Envelope
        {
            KeyId = Encoding.ASCII.GetString(id),
            KeyVersion = version,
            Header = data[..(6 + n)],
            WrappedKey = data.Slice(8 + n, w),
            Nonce = rest[..NonceSize],
            Tag = rest.Slice(NonceSize, TagSize),
            Ciphertext = rest[(NonceSize + TagSize)..],
        };
        return true;
    }

    /// <summary>Writes the header <c>[0, 6+n)</c> for a master key.</summary>
    public static byte[] EncodeHeader(string keyId, uint keyVersion)
    {
        var id = Encoding.ASCII.GetBytes(keyId);
        if (id.Length is 0 or > MaxKeyIdLength || !IsValidKeyId(id))
        {
            throw new ArgumentException($"A master key id has 1–{MaxKeyIdLength} characters of [A-Za-z0-9._-]: '{keyId}'.", nameof(keyId));
        }

        var header = new byte[6 + id.Length];
        header[0] = FormatVersion;
        header[1] = (byte)id.Length;
        id.CopyTo(header, 2);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(2 + id.Length), keyVersion);
        return header;
    }

    public static byte[] DataKeyAssociatedData(ReadOnlySpan<byte> header, string recordKey) =>
        Concat(DataKeyLabel, header, recordKey);

    public static byte[] PayloadAssociatedData(string recordKey) =>
        Concat(PayloadLabel, [FormatVersion], recordKey);

    public static bool IsValidKeyId(ReadOnlySpan<byte> id)
    {
        foreach (var b in id)
        {
            if (!(b is >= (byte)'a' and <= (byte)'z' || b is >= (byte)'A' and <= (byte)'Z' || b is >= (byte)'0' and <= (byte)'9' || b is (byte)'.' or (byte)'_' or (byte)'-'))
            {
                return false;
            }
        }

        return true;
    }

    private static byte[] Concat(ReadOnlySpan<byte> label, ReadOnlySpan<byte> middle, string recordKey)
    {
        var keyLength = Encoding.UTF8.GetByteCount(recordKey);
        var result = new byte[label.Length + middle.Length + keyLength];
        label.CopyTo(result);
        middle.CopyTo(result.AsSpan(label.Length));
        Encoding.UTF8.GetBytes(recordKey, result.AsSpan(label.Length + middle.Length));
        return result;
    }
}
