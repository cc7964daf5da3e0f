using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Gatehouse.Edge.Tls;

/// <summary>How far a ClientHello could be read.</summary>
public enum ClientHelloStatus
{
    /// <summary>A whole, well-formed ClientHello was read.</summary>
    Complete,

    /// <summary>The bytes so far are a valid prefix; more are needed.</summary>
    NeedMoreData,

    /// <summary>The bytes are not a TLS ClientHello (or break a limit).</summary>
    Invalid,
}

/// <summary>ALPN protocols a client offered that the edge cares about.</summary>
[Flags]
public enum OfferedProtocols
{
    None = 0,
    Http11 = 1,
    Http2 = 2,

    /// <summary>RFC 8737 TLS-ALPN-01 validation.</summary>
    AcmeTls1 = 4,
}

/// <summary>What the edge needs from a ClientHello: the server name and the ALPN offer.</summary>
/// <param name="ServerName">The SNI host name (RFC 6066 §3), or null when the client sent none.</param>
/// <param name="Protocols">The ALPN protocols of interest that were offered.</param>
public readonly record struct ClientHelloInfo(string? ServerName, OfferedProtocols Protocols);

/// <summary>
/// A strict, bounded, non-throwing reader of the first flight of a TLS connection (RFC 8446 §4.1.2, RFC 5246
/// §7.4.1.2): TLS records (§5.1) carrying one ClientHello handshake message, possibly split over several records.
/// It reads at most <see cref="MaxHandshakeLength"/> bytes of handshake and never allocates beyond the result.
/// </summary>
public static class ClientHello
{
    /// <summary>The largest ClientHello accepted (real ones are under 2 KiB; post-quantum key shares stay far below).</summary>
    public const int MaxHandshakeLength = 16 * 1024;

    /// <summary>RFC 8446 §5.1: a TLSPlaintext fragment is at most 2^14 bytes.</summary>
    public const int MaxRecordLength = 1 << 14;

    private const byte HandshakeRecord = 22;
    private const byte ClientHelloType = 1;
    private const ushort ServerNameExtension = 0;
    private const ushort AlpnExtension = 16;
    private const int RecordHeaderLength = 5;

    /// <summary>Reads a ClientHello from the start of <paramref name="data"/>.</summary>
    public static ClientHelloStatus TryParse(ReadOnlySequence<byte> data, out ClientHelloInfo info)
    {
        if (data.IsSingleSegment)
        {
            return TryParse(data.FirstSpan, out info);
        }

        // Enough for the longest accepted hello split over records, each with its header.
        var needed = (int)Math.Min(data.Length, MaxHandshakeLength + (((MaxHandshakeLength / 512) + 2) * RecordHeaderLength));
        var rented = ArrayPool<byte>.Shared.Rent(needed);
        try
        {
            data.Slice(0, needed).CopyTo(rented);
            return TryParse(rented.AsSpan(0, needed), out info);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>Reads a ClientHello from the start of <paramref name="data"/>.</summary>
    public static ClientHelloStatus TryParse(ReadOnlySpan<byte> data, out ClientHelloInfo info)
    {
        info = default;

        // Fast path: the whole hello is in the first record (nearly always).
        if (data.Length < RecordHeaderLength)
        {
            return data.Length == 0 || data[0] == HandshakeRecord ? ClientHelloStatus.NeedMoreData : ClientHelloStatus.Invalid;
        }

        if (!TryReadRecordHeader(data, out var firstLength))
        {
            return ClientHelloStatus.Invalid;
        }

        // Only the first record's bytes: what follows may be the next record's header.
        var available = data.Length - RecordHeaderLength;
        var first = data.Slice(RecordHeaderLength, Math.Min(firstLength, available));
        if (first.Length >= 4)
        {
            if (first[0] != ClientHelloType)
            {
                return ClientHelloStatus.Invalid;
            }

            var messageLength = (first[1] << 16) | (first[2] << 8) | first[3];
            if (messageLength > MaxHandshakeLength || messageLength < 38)
            {
                return ClientHelloStatus.Invalid;
            }

            if (4 + messageLength <= firstLength)
            {
                if (first.Length < 4 + messageLength)
                {
                    return ClientHelloStatus.NeedMoreData;
                }

                return ParseBody(first.Slice(4, messageLength), out info) ? ClientHelloStatus.Complete : ClientHelloStatus.Invalid;
            }
        }
        else if (available < firstLength)
        {
            return first.Length > 0 && first[0] != ClientHelloType ? ClientHelloStatus.Invalid : ClientHelloStatus.NeedMoreData;
        }

        // The hello continues in later records (or the first record is shorter than a handshake header).
        return ParseFragmented(data, out info);
    }

    /// <summary>Reassembles a hello spread over several handshake records (RFC 8446 §5.1 allows it).</summary>
    private static ClientHelloStatus ParseFragmented(ReadOnlySpan<byte> data, out ClientHelloInfo info)
    {
        info = default;
        Span<byte> message = stackalloc byte[0];
        byte[]? rented = null;
        try
        {
            var assembled = 0;
            var total = -1;
            var offset = 0;
            while (true)
            {
                if (data.Length - offset < RecordHeaderLength)
                {
                    return ClientHelloStatus.NeedMoreData;
                }

                if (!TryReadRecordHeader(data[offset..], out var length))
                {
                    return ClientHelloStatus.Invalid;
                }

                offset += RecordHeaderLength;
                if (data.Length - offset < length)
                {
                    return ClientHelloStatus.NeedMoreData;
                }

                var fragment = data.Slice(offset, length);
                offset += length;
                rented ??= ArrayPool<byte>.Shared.Rent(MaxHandshakeLength + 4);
                message = rented;
                if (assembled + fragment.Length > MaxHandshakeLength + 4)
                {
                    return ClientHelloStatus.Invalid;
                }

                fragment.CopyTo(message[assembled..]);
                assembled += fragment.Length;
                if (total < 0 && assembled >= 4)
                {
                    if (message[0] != ClientHelloType)
                    {
                        return ClientHelloStatus.Invalid;
                    }

                    total = 4 + ((message[1] << 16) | (message[2] << 8) | message[3]);
                    if (total - 4 > MaxHandshakeLength || total - 4 < 38)
                    {
                        return ClientHelloStatus.Invalid;
                    }
                }

                if (total >= 0 && assembled >= total)
                {
                    // Nothing may follow the hello in its last record (a second handshake message is a protocol error).
                    if (assembled != total)
                    {
                        return ClientHelloStatus.Invalid;
                    }

                    return ParseBody(message[4..total], out info) ? ClientHelloStatus.Complete : ClientHelloStatus.Invalid;
                }
            }
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private static bool TryReadRecordHeader(ReadOnlySpan<byte> data, out int length)
    {
        // ContentType handshake(22); legacy_record_version 0x0301..0x0303 (RFC 8446 §5.1 allows 0x0301 in a first hello).
        length = BinaryPrimitives.ReadUInt16BigEndian(data.Slice(3, 2));
        return data[0] == HandshakeRecord && data[1] == 3 && data[2] is >= 1 and <= 3 && length is > 0 and <= MaxRecordLength;
    }

    /// <summary>Parses the ClientHello body (after the 4-byte handshake header).</summary>
    private static bool ParseBody(ReadOnlySpan<byte> body, out ClientHelloInfo info)
    {
        info = default;
        var reader = new SpanReader(body);

        // legacy_version(2) random(32)
        if (!reader.Skip(2 + 32)
            || !reader.TryReadVector8(out var sessionId) || sessionId.Length > 32
            || !reader.TryReadVector16(out var cipherSuites) || cipherSuites.Length < 2 || (cipherSuites.Length & 1) != 0
            || !reader.TryReadVector8(out var compression) || compression.Length < 1)
        {
            return false;
        }

        if (reader.Remaining == 0)
        {
            return true; // no extensions (pre-TLS 1.2 clients): no SNI
        }

        if (!reader.TryReadVector16(out var extensions) || reader.Remaining != 0)
        {
            return false;
        }

        string? serverName = null;
        var protocols = OfferedProtocols.None;
        var seenServerName = false;
        var seenAlpn = false;
        var extensionReader = new SpanReader(extensions);
        while (extensionReader.Remaining > 0)
        {
            if (!extensionReader.TryReadUInt16(out var type) || !extensionReader.TryReadVector16(out var extension))
            {
                return false;
            }

            switch (type)
            {
                case ServerNameExtension:
                    if (seenServerName || !TryReadServerName(extension, out serverName))
                    {
                        return false;
                    }

                    seenServerName = true;
                    break;
                case AlpnExtension:
                    if (seenAlpn || !TryReadAlpn(extension, out protocols))
                    {
                        return false;
                    }

                    seenAlpn = true;
                    break;
            }
        }

        info = new ClientHelloInfo(serverName, protocols);
        return true;
    }

    /// <summary>RFC 6066 §3: ServerNameList of (NameType, HostName); one host_name at most; ASCII, no trailing dot.</summary>
    private static bool TryReadServerName(ReadOnlySpan<byte> extension, out string? serverName)
    {
        serverName = null;
        var reader = new SpanReader(extension);
        if (!reader.TryReadVector16(out var list) || reader.Remaining != 0 || list.Length == 0)
        {
            return false;
        }

        var names = new SpanReader(list);
        while (names.Remaining > 0)
        {
            if (!names.TryReadByte(out var nameType) || !names.TryReadVector16(out var name))
            {
                return false;
            }

            if (nameType != 0)
            {
                continue; // unknown name types are skipped
            }

            if (serverName is not null || name.Length is 0 or > 253 || name[^1] == (byte)'.')
            {
                return false;
            }

            foreach (var b in name)
            {
                if (!(char.IsAsciiLetterOrDigit((char)b) || b is (byte)'-' or (byte)'.' or (byte)'_'))
                {
                    return false;
                }
            }

            serverName = Encoding.ASCII.GetString(name);
        }

        return true;
    }

    /// <summary>RFC 7301 §3.1: ProtocolNameList of non-empty names.</summary>
    private static bool TryReadAlpn(ReadOnlySpan<byte> extension, out OfferedProtocols protocols)
    {
        protocols = OfferedProtocols.None;
        var reader = new SpanReader(extension);
        if (!reader.TryReadVector16(out var list) || reader.Remaining != 0 || list.Length < 2)
        {
            return false;
        }

        var names = new SpanReader(list);
        while (names.Remaining > 0)
        {
            if (!names.TryReadVector8(out var name) || name.Length == 0)
            {
                return false;
            }

            if (name.SequenceEqual("h2"u8))
            {
                protocols |= OfferedProtocols.Http2;
            }
            else if (name.SequenceEqual("http/1.1"u8))
            {
                protocols |= OfferedProtocols.Http11;
            }
            else if (name.SequenceEqual("acme-tls/1"u8))
            {
                protocols |= OfferedProtocols.AcmeTls1;
            }
        }

        return true;
    }

    private ref struct SpanReader(ReadOnlySpan<byte> data)
    {
        private ReadOnlySpan<byte> _data = data;

        public readonly int Remaining => _data.Length;

        public bool Skip(int count)
        {
            if (_data.Length < count)
            {
                return false;
            }

            _data = _data[count..];
            return true;
        }

        public bool TryReadByte(out byte value)
        {
            value = 0;
            if (_data.IsEmpty)
            {
                return false;
            }

            value = _data[0];
            _data = _data[1..];
            return true;
        }

        public bool TryReadUInt16(out ushort value)
        {
            value = 0;
            if (_data.Length < 2)
            {
                return false;
            }

            value = BinaryPrimitives.ReadUInt16BigEndian(_data);
            _data = _data[2..];
            return true;
        }

        public bool TryReadVector8(out ReadOnlySpan<byte> vector)
        {
            vector = default;
            return TryReadByte(out var length) && TryTake(length, out vector);
        }

        public bool TryReadVector16(out ReadOnlySpan<byte> vector)
        {
            vector = default;
            return TryReadUInt16(out var length) && TryTake(length, out vector);
        }

        private bool TryTake(int length, out ReadOnlySpan<byte> vector)
        {
            vector = default;
            if (_data.Length < length)
            {
                return false;
            }

            vector = _data[..length];
            _data = _data[length..];
            return true;
        }
    }
}
