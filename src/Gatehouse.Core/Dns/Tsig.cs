using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Gatehouse.Dns;

/// <summary>How a response's TSIG record (RFC 8945 §5.3) checked out.</summary>
internal enum TsigStatus
{
    Valid,

    /// <summary>The response carries no TSIG record.</summary>
    Unsigned,

    /// <summary>The server put an error in its TSIG record (BADSIG, BADKEY, BADTIME…), see <see cref="TsigCheck.Error"/>.</summary>
    ServerError,

    /// <summary>The response is signed with another key name or algorithm than the request.</summary>
    OtherKey,

    /// <summary>The MAC does not match: the response was altered or not made with our key.</summary>
    BadMac,

    /// <summary>The MAC matches but the response's time is outside its fudge from our clock.</summary>
    BadTime,
}

/// <param name="Status">The outcome.</param>
/// <param name="Error">The TSIG error field of the response.</param>
/// <param name="TimeSigned">The response's time signed (seconds since the Unix epoch), 0 when unsigned.</param>
internal readonly record struct TsigCheck(TsigStatus Status, DnsResponseCode Error = DnsResponseCode.NoError, long TimeSigned = 0);

/// <summary>Signs requests and verifies responses with TSIG (RFC 8945).</summary>
internal static class Tsig
{
    /// <summary>RFC 8945 §10 recommends 300 seconds.</summary>
    public const ushort DefaultFudge = 300;

    /// <summary>
    /// Appends a TSIG record to <paramref name="message"/> (a complete message without one) and returns the signed
    /// message and its MAC, which the response's MAC covers (§5.3). A response is signed over the MAC of the request
    /// it answers, <paramref name="requestMac"/> (§5.3); a request has none.
    /// </summary>
    public static (byte[] Message, byte[] Mac) Sign(ReadOnlySpan<byte> message, TsigKey key, DateTimeOffset now, ushort fudge = DefaultFudge, byte[]? requestMac = null)
    {
        var timeSigned = now.ToUnixTimeSeconds();
        byte[] mac;
        using (var hmac = key.CreateHmac())
        {
            if (requestMac is not null)
            {
                AppendRequestMac(hmac, requestMac);
            }

            hmac.AppendData(message); // §4.3.1: the whole message, as sent, without the TSIG record
            AppendVariables(hmac, key.Name, key.AlgorithmName, timeSigned, fudge, DnsResponseCode.NoError, []);
            mac = hmac.GetHashAndReset();
        }

        var writer = new DnsWriter();
        writer.Write(message);
        var id = BinaryPrimitives.ReadUInt16BigEndian(message);
        DnsMessage.WriteRecord(writer, new DnsRecord(key.Name, DnsRecordType.TSIG, DnsClass.ANY, 0,
            new TsigData(key.AlgorithmName, timeSigned, fudge, mac, id, DnsResponseCode.NoError, [])));
        writer.PatchUInt16(10, (ushort)(BinaryPrimitives.ReadUInt16BigEndian(message[10..]) + 1));
        return (writer.ToArray(), mac);
    }

    /// <summary>
    /// Verifies the TSIG record of <paramref name="response"/> (the bytes <paramref name="parsed"/> came from) against
    /// <paramref name="requestMac"/>, the MAC of the request it answers (§5.3).
    /// </summary>
    public static TsigCheck Verify(ReadOnlySpan<byte> response, DnsMessage parsed, TsigKey key, ReadOnlySpan<byte> requestMac, DateTimeOffset now)
    {
        if (parsed.Tsig is not { Data: TsigData tsig } record)
        {
            return new TsigCheck(TsigStatus.Unsigned);
        }

        if (tsig.Error != DnsResponseCode.NoError)
        {
            // BADSIG and BADKEY answers are unsigned (empty MAC); the error is the news either way (§5.3.2).
            return new TsigCheck(TsigStatus.ServerError, tsig.Error, tsig.TimeSigned);
        }

        if (!DnsName.Equal(record.Name, key.Name) || !DnsName.Equal(tsig.Algorithm, key.AlgorithmName))
        {
            return new TsigCheck(TsigStatus.OtherKey, tsig.Error, tsig.TimeSigned);
        }

        if (tsig.Mac.Length != key.MacLength)
        {
            return new TsigCheck(TsigStatus.BadMac, tsig.Error, tsig.TimeSigned); // truncated MACs (§5.2.2.1) are not accepted
        }

        // §4.3.1 and §4.3.3: the request MAC, then the message as it was before the TSIG record was added (original
        // ID, one additional record fewer), then the TSIG variables.
        var unsigned = response[..parsed.TsigOffset].ToArray();
        BinaryPrimitives.WriteUInt16BigEndian(unsigned, tsig.OriginalId);
        BinaryPrimitives.WriteUInt16BigEndian(unsigned.AsSpan(10), (ushort)(parsed.Additionals.Count - 1));
        byte[] expected;
        using (var hmac = key.CreateHmac())
        {
            AppendRequestMac(hmac, requestMac);
            hmac.AppendData(unsigned);
            AppendVariables(hmac, record.Name, tsig.Algorithm, tsig.TimeSigned, tsig.Fudge, tsig.Error, tsig.OtherData);
            expected = hmac.GetHashAndReset();
        }

        if (!CryptographicOperations.FixedTimeEquals(expected, tsig.Mac))
        {
            return new TsigCheck(TsigStatus.BadMac, tsig.Error, tsig.TimeSigned);
        }

        // §5.4.3: checked after the MAC, so a forged time cannot pass for the server's.
        return Math.Abs(now.ToUnixTimeSeconds() - tsig.TimeSigned) > tsig.Fudge
            ? new TsigCheck(TsigStatus.BadTime, tsig.Error, tsig.TimeSigned)
            : new TsigCheck(TsigStatus.Valid, tsig.Error, tsig.TimeSigned);
    }

    private static void AppendRequestMac(IncrementalHash hmac, ReadOnlySpan<byte> requestMac)
    {
        Span<byte> length = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(length, (ushort)requestMac.Length);
        hmac.AppendData(length);
        hmac.AppendData(requestMac);
    }

    /// <summary>The TSIG variables of §4.3.3, names in canonical (lowercase, uncompressed) form.</summary>
    private static void AppendVariables(IncrementalHash hmac, string keyName, string algorithm, long timeSigned, ushort fudge, DnsResponseCode error, ReadOnlySpan<byte> otherData)
    {
        var writer = new DnsWriter();
        DnsName.Write(writer, keyName, lowercase: true);
        writer.WriteUInt16((ushort)DnsClass.ANY);
        writer.WriteUInt32(0); // TTL
        DnsName.Write(writer, algorithm, lowercase: true);
        writer.WriteUInt48(timeSigned);
        writer.WriteUInt16(fudge);
        writer.WriteUInt16((ushort)error);
        writer.WriteUInt16((ushort)otherData.Length);
        writer.Write(otherData);
        hmac.AppendData(writer.WrittenSpan);
    }
}
