using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Gatehouse.IntegrationTests.Infrastructure;

/// <summary>What a PROXY protocol header said; <see cref="Version"/> 0 when the connection had none.</summary>
public sealed record ProxyHeader(int Version, bool Local, string Family, IPEndPoint? Source, IPEndPoint? Destination);

/// <summary>
/// A strict reader of the PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) at the start of a
/// stream, written from the spec independently of the edge's writer. It reads exactly the header's bytes (version 1
/// byte by byte up to its CRLF, at most 107 bytes) and throws <see cref="InvalidDataException"/> for anything the
/// spec does not allow.
/// </summary>
public static class ProxyProtocolReader
{
    private static readonly byte[] V2Signature = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

    /// <summary>Reads the header. A first byte of a TLS record (22) means no header: it is returned in
    /// <paramref name="leftover"/> with nothing else read.</summary>
    public static async Task<ProxyHeader> ReadAsync(Stream stream, List<byte> leftover, CancellationToken cancellationToken)
    {
        var first = await ReadByteAsync(stream, cancellationToken);
        switch (first)
        {
            case 22:
                leftover.Add(first);
                return new ProxyHeader(0, false, "none", null, null);
            case (byte)'P':
                return await ReadV1Async(stream, cancellationToken);
            case 0x0D:
                return await ReadV2Async(stream, cancellationToken);
            default:
                throw new InvalidDataException($"0x{first:x2} starts neither a PROXY header nor a TLS record");
        }
    }

    /// <summary>§2.1: "PROXY" SP ("TCP4" | "TCP6" | "UNKNOWN") ... CRLF, 107 bytes at most.</summary>
    private static async Task<ProxyHeader> ReadV1Async(Stream stream, CancellationToken cancellationToken)
    {
        var line = new StringBuilder("P");
        while (true)
        {
            if (line.Length >= 107)
            {
                throw new InvalidDataException("a version 1 header longer than 107 bytes");
            }

            var b = await ReadByteAsync(stream, cancellationToken);
            if (b is < 0x20 or > 0x7E && b is not (byte)'\r' and not (byte)'\n')
            {
                throw new InvalidDataException($"byte 0x{b:x2} in a version 1 header");
            }

            line.Append((char)b);
            if (b == '\n')
            {
                break;
            }
        }

        var text = line.ToString();
        if (!text.EndsWith("\r\n", StringComparison.Ordinal) || text.IndexOf('\r', StringComparison.Ordinal) != text.Length - 2)
        {
            throw new InvalidDataException("a version 1 header not ended by CRLF");
        }

        var fields = text[..^2].Split(' ');
        if (fields[0] != "PROXY" || fields.Length < 2)
        {
            throw new InvalidDataException($"not a version 1 header: '{text.TrimEnd()}'");
        }

        if (fields[1] == "UNKNOWN")
        {
            return new ProxyHeader(1, false, "UNKNOWN", null, null);
        }

        if (fields.Length != 6 || fields[1] is not ("TCP4" or "TCP6"))
        {
            throw new InvalidDataException($"a version 1 header needs PROXY TCP4|TCP6 src dst sport dport: '{text.TrimEnd()}'");
        }

        var family = fields[1] == "TCP4" ? AddressFamily.InterNetwork : AddressFamily.InterNetworkV6;
        return new ProxyHeader(1, false, fields[1], new IPEndPoint(Address(fields[2], family), Port(fields[4])), new IPEndPoint(Address(fields[3], family), Port(fields[5])));

        static IPAddress Address(string text, AddressFamily family)
        {
            var valid = IPAddress.TryParse(text, out var address) && address.AddressFamily == family && !text.Contains('%', StringComparison.Ordinal)
                && (family == AddressFamily.InterNetworkV6 || text.Count(c => c == '.') == 3);
            return valid ? address! : throw new InvalidDataException($"'{text}' is not an {family} address");
        }

        static int Port(string text) =>
            text.Length is > 0 and <= 5 && text.All(char.IsAsciiDigit) && (text == "0" || text[0] != '0')
            && int.Parse(text, CultureInfo.InvariantCulture) is var port && port <= 65535
                ? port
                : throw new InvalidDataException($"'{text}' is not a port");
    }

    /// <summary>§2.2: 12-byte signature, version/command, family/transport, length, addresses (TLVs skipped).</summary>
    private static async Task<ProxyHeader> ReadV2Async(Stream stream, CancellationToken cancellationToken)
    {
        var fixedPart = new byte[16];
        fixedPart[0] = 0x0D;
        await stream.ReadExactlyAsync(fixedPart.AsMemory(1), cancellationToken);
        if (!fixedPart.AsSpan(0, 12).SequenceEqual(V2Signature))
        {
            throw new InvalidDataException("a bad version 2 signature");
        }

        var version = fixedPart[12] >> 4;
        var command = fixedPart[12] & 0x0F;
        if (version != 2 || command > 1)
        {
            throw new InvalidDataException($"version {version} command {command} in a version 2 header");
        }

        var length = BinaryPrimitives.ReadUInt16BigEndian(fixedPart.AsSpan(14));
        if (length > 1024)
        {
            throw new InvalidDataException($"a version 2 header of {length} bytes of addresses and TLVs");
        }

        var rest = new byte[length];
        await stream.ReadExactlyAsync(rest, cancellationToken);
        var local = command == 0;
        switch (fixedPart[13])
        {
            case 0x00:
                return new ProxyHeader(2, local, "UNSPEC", null, null);
            case 0x11 when length >= 12:
                return new ProxyHeader(2, local, "TCP4",
                    new IPEndPoint(new IPAddress(rest.AsSpan(0, 4)), BinaryPrimitives.ReadUInt16BigEndian(rest.AsSpan(8))),
                    new IPEndPoint(new IPAddress(rest.AsSpan(4, 4)), BinaryPrimitives.ReadUInt16BigEndian(rest.AsSpan(10))));
            case 0x21 when length >= 36:
                return new ProxyHeader(2, local, "TCP6",
                    new IPEndPoint(new IPAddress(rest.AsSpan(0, 16)), BinaryPrimitives.ReadUInt16BigEndian(rest.AsSpan(32))),
                    new IPEndPoint(new IPAddress(rest.AsSpan(16, 16)), BinaryPrimitives.ReadUInt16BigEndian(rest.AsSpan(34))));
            default:
                throw new InvalidDataException($"family/transport 0x{fixedPart[13]:x2} with {length} bytes in a version 2 header");
        }
    }

    private static async Task<byte> ReadByteAsync(Stream stream, CancellationToken cancellationToken)
    {
        var one = new byte[1];
        await stream.ReadExactlyAsync(one, cancellationToken);
        return one[0];
    }
}
