using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Text;

namespace Gatehouse.Dns;

/// <summary>A question (RFC 1035 §4.1.2); in an UPDATE, the zone section (RFC 2136 §2.3).</summary>
internal sealed record DnsQuestion(string Name, DnsRecordType Type, DnsClass Class = DnsClass.IN);

/// <summary>A resource record (RFC 1035 §4.1.3) with its RDATA decoded for the types this code uses.</summary>
internal sealed record DnsRecord(string Name, DnsRecordType Type, DnsClass Class, uint Ttl, DnsRecordData Data);

/// <summary>Decoded RDATA.</summary>
internal abstract record DnsRecordData;

/// <summary>No RDATA: RFC 2136 §2.5.2 "delete an RRset" and §2.4 prerequisites carry none.</summary>
internal sealed record EmptyData : DnsRecordData
{
    public static readonly EmptyData Instance = new();
}

/// <summary>TXT RDATA (RFC 1035 §3.3.14): character-strings of at most 255 octets each, kept as one char per octet.</summary>
internal sealed record TxtData(IReadOnlyList<string> Strings) : DnsRecordData
{
    public const int MaxStringLength = 255;

    /// <summary>The record's text: its strings joined (as ACME validators read them) and decoded as UTF-8.</summary>
    public string Value => Encoding.UTF8.GetString(Encoding.Latin1.GetBytes(string.Concat(Strings)));

    /// <summary>One record holding <paramref name="value"/> as UTF-8, split into as many character-strings as needed.</summary>
    public static TxtData FromValue(string value)
    {
        var text = Encoding.Latin1.GetString(Encoding.UTF8.GetBytes(value));
        var strings = new List<string>();
        for (var start = 0; start < text.Length; start += MaxStringLength)
        {
            strings.Add(text.Substring(start, Math.Min(MaxStringLength, text.Length - start)));
        }

        return new TxtData(strings.Count == 0 ? [""] : strings);
    }
}

/// <summary>A single domain name: NS and CNAME RDATA.</summary>
internal sealed record NameData(string Target) : DnsRecordData;

/// <summary>A or AAAA RDATA.</summary>
internal sealed record AddressData(IPAddress Address) : DnsRecordData;

/// <summary>SOA RDATA (RFC 1035 §3.3.13).</summary>
internal sealed record SoaData(string PrimaryServer, string Mailbox, uint Serial, uint Refresh, uint Retry, uint Expire, uint Minimum) : DnsRecordData;

/// <summary>TSIG RDATA (RFC 8945 §4.2).</summary>
internal sealed record TsigData(string Algorithm, long TimeSigned, ushort Fudge, byte[] Mac, ushort OriginalId, DnsResponseCode Error, byte[] OtherData) : DnsRecordData;

/// <summary>RDATA of any other type, undecoded.</summary>
internal sealed record RawData(byte[] Bytes) : DnsRecordData;

/// <summary>
/// A DNS message (RFC 1035 §4.1). For UPDATE (RFC 2136 §2) the four sections are zone, prerequisite, update and
/// additional. Reading never throws: <see cref="TryParse"/> says why a message is refused.
/// </summary>
internal sealed class DnsMessage
{
    private const int HeaderLength = 12;

    public ushort Id { get; init; }

    public bool IsResponse { get; init; }

    public DnsOpcode Opcode { get; init; }

    public bool Authoritative { get; init; }

    public bool Truncated { get; init; }

    public bool RecursionDesired { get; init; }

    public bool RecursionAvailable { get; init; }

    /// <summary>The header's 4-bit RCODE.</summary>
    public DnsResponseCode ResponseCode { get; init; }

    public IReadOnlyList<DnsQuestion> Questions { get; init; } = [];

    public IReadOnlyList<DnsRecord> Answers { get; init; } = [];

    public IReadOnlyList<DnsRecord> Authorities { get; init; } = [];

    public IReadOnlyList<DnsRecord> Additionals { get; init; } = [];

    /// <summary>Where the TSIG record starts in the parsed bytes, when the last additional record is one; -1 otherwise.</summary>
    public int TsigOffset { get; private init; } = -1;

    /// <summary>The TSIG record (the last additional record, RFC 8945 §5.1), if any.</summary>
    public DnsRecord? Tsig => TsigOffset >= 0 ? Additionals[^1] : null;

    /// <summary>Encodes the message; names are written uncompressed (RFC 1035 §4.1.4 lets a writer choose).</summary>
    public byte[] ToArray()
    {
        var writer = new DnsWriter();
        WriteTo(writer);
        return writer.ToArray();
    }

    public void WriteTo(DnsWriter writer)
    {
        writer.WriteUInt16(Id);
        var flags = (IsResponse ? 0x8000 : 0) | ((int)Opcode & 0xF) << 11 | (Authoritative ? 0x0400 : 0) | (Truncated ? 0x0200 : 0)
            | (RecursionDesired ? 0x0100 : 0) | (RecursionAvailable ? 0x0080 : 0) | ((int)ResponseCode & 0xF);
        writer.WriteUInt16((ushort)flags);
        writer.WriteUInt16(checked((ushort)Questions.Count));
        writer.WriteUInt16(checked((ushort)Answers.Count));
        writer.WriteUInt16(checked((ushort)Authorities.Count));
        writer.WriteUInt16(checked((ushort)Additionals.Count));
        foreach (var question in Questions)
        {
            DnsName.Write(writer, question.Name);
            writer.WriteUInt16((ushort)question.Type);
            writer.WriteUInt16((ushort)question.Class);
        }

        foreach (var record in Answers.Concat(Authorities).Concat(Additionals))
        {
            WriteRecord(writer, record);
        }
    }

    public static void WriteRecord(DnsWriter writer, DnsRecord record)
    {
        DnsName.Write(writer, record.Name);
        writer.WriteUInt16((ushort)record.Type);
        writer.WriteUInt16((ushort)record.Class);
        writer.WriteUInt32(record.Ttl);
        var lengthAt = writer.Length;
        writer.WriteUInt16(0);
        switch (record.Data)
        {
            case EmptyData:
                break;
            case TxtData txt:
                foreach (var text in txt.Strings)
                {
                    if (text.Length > TxtData.MaxStringLength)
                    {
                        throw new ArgumentException($"a TXT character-string is at most {TxtData.MaxStringLength} octets");
                    }

                    writer.WriteByte((byte)text.Length);
                    writer.Write(Encoding.Latin1.GetBytes(text));
                }

                break;
            case NameData name:
                DnsName.Write(writer, name.Target);
                break;
            case AddressData address:
                writer.Write(address.Address.GetAddressBytes());
                break;
            case SoaData soa:
                DnsName.Write(writer, soa.PrimaryServer);
                DnsName.Write(writer, soa.Mailbox);
                writer.WriteUInt32(soa.Serial);
                writer.WriteUInt32(soa.Refresh);
                writer.WriteUInt32(soa.Retry);
                writer.WriteUInt32(soa.Expire);
                writer.WriteUInt32(soa.Minimum);
                break;
            case TsigData tsig:
                DnsName.Write(writer, tsig.Algorithm);
                writer.WriteUInt48(tsig.TimeSigned);
                writer.WriteUInt16(tsig.Fudge);
                writer.WriteUInt16(checked((ushort)tsig.Mac.Length));
                writer.Write(tsig.Mac);
                writer.WriteUInt16(tsig.OriginalId);
                writer.WriteUInt16((ushort)tsig.Error);
                writer.WriteUInt16(checked((ushort)tsig.OtherData.Length));
                writer.Write(tsig.OtherData);
                break;
            case RawData raw:
                writer.Write(raw.Bytes);
                break;
        }

        writer.PatchUInt16(lengthAt, checked((ushort)(writer.Length - lengthAt - 2)));
    }

    /// <summary>Decodes a whole message. Never throws; on failure <paramref name="error"/> says what is wrong.</summary>
    public static bool TryParse(ReadOnlySpan<byte> data, [NotNullWhen(true)] out DnsMessage? message, [NotNullWhen(false)] out string? error)
    {
        message = null;
        if (data.Length < HeaderLength)
        {
            error = $"{data.Length} octets is shorter than a DNS header";
            return false;
        }

        var flags = BinaryPrimitives.ReadUInt16BigEndian(data[2..]);
        var counts = new int[4];
        for (var i = 0; i < 4; i++)
        {
            counts[i] = BinaryPrimitives.ReadUInt16BigEndian(data[(4 + 2 * i)..]);
        }

        // A question takes at least 5 octets and a record at least 11: counts beyond that cannot be honest.
        if (counts[0] * 5 + (counts[1] + counts[2] + counts[3]) * 11 > data.Length - HeaderLength)
        {
            error = "the section counts do not fit in the message";
            return false;
        }

        var offset = HeaderLength;
        var questions = new List<DnsQuestion>(counts[0]);
        for (var i = 0; i < counts[0]; i++)
        {
            if (!DnsName.TryRead(data, ref offset, out var name) || offset + 4 > data.Length)
            {
                error = "a question is malformed";
                return false;
            }

            questions.Add(new DnsQuestion(name, (DnsRecordType)BinaryPrimitives.ReadUInt16BigEndian(data[offset..]), (DnsClass)BinaryPrimitives.ReadUInt16BigEndian(data[(offset + 2)..])));
            offset += 4;
        }

        var sections = new List<DnsRecord>[3];
        var lastRecordOffset = -1;
        for (var section = 0; section < 3; section++)
        {
            sections[section] = new List<DnsRecord>(counts[section + 1]);
            for (var i = 0; i < counts[section + 1]; i++)
            {
                lastRecordOffset = offset;
                if (!TryReadRecord(data, ref offset, out var record, out error))
                {
                    return false;
                }

                sections[section].Add(record);
            }
        }

        if (offset != data.Length)
        {
            error = $"{data.Length - offset} octets follow the last record";
            return false;
        }

        var hasTsig = sections[2].Count > 0 && sections[2][^1].Type == DnsRecordType.TSIG;
        message = new DnsMessage
        {
            Id = BinaryPrimitives.ReadUInt16BigEndian(data),
            IsResponse = (flags & 0x8000) != 0,
            Opcode = (DnsOpcode)((flags >> 11) & 0xF),
            Authoritative = (flags & 0x0400) != 0,
            Truncated = (flags & 0x0200) != 0,
            RecursionDesired = (flags & 0x0100) != 0,
            RecursionAvailable = (flags & 0x0080) != 0,
            ResponseCode = (DnsResponseCode)(flags & 0xF),
            Questions = questions,
            Answers = sections[0],
            Authorities = sections[1],
            Additionals = sections[2],
            TsigOffset = hasTsig ? lastRecordOffset : -1,
        };
        error = null;
        return true;
    }

    private static bool TryReadRecord(ReadOnlySpan<byte> data, ref int offset, [NotNullWhen(true)] out DnsRecord? record, [NotNullWhen(false)] out string? error)
    {
        record = null;
        if (!DnsName.TryRead(data, ref offset, out var name) || offset + 10 > data.Length)
        {
            error = "a record's name or header is malformed";
            return false;
        }

        var type = (DnsRecordType)BinaryPrimitives.ReadUInt16BigEndian(data[offset..]);
        var @class = (DnsClass)BinaryPrimitives.ReadUInt16BigEndian(data[(offset + 2)..]);
        var ttl = BinaryPrimitives.ReadUInt32BigEndian(data[(offset + 4)..]);
        int length = BinaryPrimitives.ReadUInt16BigEndian(data[(offset + 8)..]);
        offset += 10;
        if (offset + length > data.Length)
        {
            error = $"the RDATA of {name} {type} runs past the end of the message";
            return false;
        }

        // Names inside RDATA may point anywhere earlier in the message, so RDATA is read from the whole message,
        // bounded by its end.
        var end = offset + length;
        var bounded = data[..end];
        var position = offset;
        if (!TryReadData(bounded, type, length, ref position, out var rdata) || position != end)
        {
            error = $"the RDATA of {name} {type} is malformed";
            return false;
        }

        offset = end;
        record = new DnsRecord(name, type, @class, ttl, rdata);
        error = null;
        return true;
    }

    private static bool TryReadData(ReadOnlySpan<byte> data, DnsRecordType type, int length, ref int position, [NotNullWhen(true)] out DnsRecordData? rdata)
    {
        rdata = null;
        if (length == 0)
        {
            rdata = EmptyData.Instance;
            return true;
        }

        switch (type)
        {
            case DnsRecordType.TXT:
                var strings = new List<string>();
                while (position < data.Length)
                {
                    var count = data[position];
                    if (position + 1 + count > data.Length)
                    {
                        return false;
                    }

                    strings.Add(Encoding.Latin1.GetString(data.Slice(position + 1, count)));
                    position += 1 + count;
                }

                rdata = new TxtData(strings);
                return true;
            case DnsRecordType.NS or DnsRecordType.CNAME:
                if (!DnsName.TryRead(data, ref position, out var target))
                {
                    return false;
                }

                rdata = new NameData(target);
                return true;
            case DnsRecordType.A or DnsRecordType.AAAA:
                if (length != (type == DnsRecordType.A ? 4 : 16))
                {
                    return false;
                }

                rdata = new AddressData(new IPAddress(data.Slice(position, length)));
                position += length;
                return true;
            case DnsRecordType.SOA:
                if (!DnsName.TryRead(data, ref position, out var primary) || !DnsName.TryRead(data, ref position, out var mailbox) || position + 20 > data.Length)
                {
                    return false;
                }

                rdata = new SoaData(primary, mailbox, ReadUInt32(data, position), ReadUInt32(data, position + 4), ReadUInt32(data, position + 8),
                    ReadUInt32(data, position + 12), ReadUInt32(data, position + 16));
                position += 20;
                return true;
            case DnsRecordType.TSIG:
                return TryReadTsig(data, ref position, out rdata);
            default:
                rdata = new RawData(data.Slice(position, length).ToArray());
                position += length;
                return true;
        }
    }

    private static bool TryReadTsig(ReadOnlySpan<byte> data, ref int position, [NotNullWhen(true)] out DnsRecordData? rdata)
    {
        rdata = null;
        if (!DnsName.TryRead(data, ref position, out var algorithm) || position + 10 > data.Length)
        {
            return false;
        }

        var time = (long)BinaryPrimitives.ReadUInt16BigEndian(data[position..]) << 32 | ReadUInt32(data, position + 2);
        var fudge = BinaryPrimitives.ReadUInt16BigEndian(data[(position + 6)..]);
        int macLength = BinaryPrimitives.ReadUInt16BigEndian(data[(position + 8)..]);
        position += 10;
        if (position + macLength + 6 > data.Length)
        {
            return false;
        }

        var mac = data.Slice(position, macLength).ToArray();
        position += macLength;
        var originalId = BinaryPrimitives.ReadUInt16BigEndian(data[position..]);
        var error = (DnsResponseCode)BinaryPrimitives.ReadUInt16BigEndian(data[(position + 2)..]);
        int otherLength = BinaryPrimitives.ReadUInt16BigEndian(data[(position + 4)..]);
        position += 6;
        if (position + otherLength > data.Length)
        {
            return false;
        }

        rdata = new TsigData(algorithm, time, fudge, mac, originalId, error, data.Slice(position, otherLength).ToArray());
        position += otherLength;
        return true;
    }

    private static uint ReadUInt32(ReadOnlySpan<byte> data, int offset) => BinaryPrimitives.ReadUInt32BigEndian(data[offset..]);
}
