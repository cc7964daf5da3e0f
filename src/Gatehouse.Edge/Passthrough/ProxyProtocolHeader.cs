using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text.Unicode;
using Gatehouse.Sites;

namespace Gatehouse.Edge.Passthrough;

/// <summary>
/// Writes the PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) that tells a backend the
/// address and port the client connected from and the address and port it connected to. Version 2 carries no TLVs.
/// </summary>
public static class ProxyProtocolHeader
{
    /// <summary>Enough for any header written here: version 1 is at most 107 bytes (§2.1), version 2 with IPv6
    /// addresses 16 + 36 = 52.</summary>
    public const int MaxLength = 108;

    /// <summary>§2.2: the twelve bytes every version 2 header starts with.</summary>
    public static ReadOnlySpan<byte> V2Signature => [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

    /// <summary>
    /// Writes the header for a connection from <paramref name="source"/> (the client) to <paramref name="destination"/>
    /// (the listener's local end) into <paramref name="buffer"/> (at least <see cref="MaxLength"/> bytes) and returns
    /// its length; 0 for <see cref="ProxyProtocolVersion.None"/>. Addresses of two families are both sent as IPv6
    /// (IPv4-mapped); endpoints that are not IP (a Unix socket, an in-memory connection) give <c>UNKNOWN</c> (v1) or
    /// the unspecified family (v2), which tell the backend to use the connection's own addresses.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="buffer"/> is shorter than <see cref="MaxLength"/>.</exception>
    public static int Write(ProxyProtocolVersion version, EndPoint? source, EndPoint? destination, Span<byte> buffer)
    {
        if (buffer.Length < MaxLength)
        {
            throw new ArgumentException($"The buffer needs {MaxLength} bytes.", nameof(buffer));
        }

        var known = TryNormalize(source, destination, out var from, out var to);
        return version switch
        {
            ProxyProtocolVersion.V1 => known ? WriteV1(from!, to!, buffer) : WriteV1Unknown(buffer),
            ProxyProtocolVersion.V2 => WriteV2(known ? from : null, known ? to : null, buffer),
            _ => 0,
        };
    }

    /// <summary>Both endpoints as IP endpoints of one family: IPv4 when both are IPv4 (or IPv4-mapped), else IPv6;
    /// scope ids dropped (§2.1: addresses as inet_ntop prints them).</summary>
    private static bool TryNormalize(EndPoint? source, EndPoint? destination, out IPEndPoint? from, out IPEndPoint? to)
    {
        from = null;
        to = null;
        if (source is not IPEndPoint s || destination is not IPEndPoint d)
        {
            return false;
        }

        var v4 = IsV4(s.Address) && IsV4(d.Address);
        from = new IPEndPoint(Family(s.Address, v4), s.Port);
        to = new IPEndPoint(Family(d.Address, v4), d.Port);
        return true;

        static bool IsV4(IPAddress address) => address.AddressFamily == AddressFamily.InterNetwork || address.IsIPv4MappedToIPv6;

        static IPAddress Family(IPAddress address, bool v4)
        {
            var mapped = v4 ? address.MapToIPv4() : address.MapToIPv6();
            return mapped.AddressFamily == AddressFamily.InterNetworkV6 && mapped.ScopeId != 0 ? new IPAddress(mapped.GetAddressBytes()) : mapped;
        }
    }

    /// <summary>§2.1: <c>PROXY TCP4|TCP6 source destination sport dport\r\n</c>.</summary>
    private static int WriteV1(IPEndPoint from, IPEndPoint to, Span<byte> buffer)
    {
        var family = from.AddressFamily == AddressFamily.InterNetwork ? "TCP4" : "TCP6";
        return Utf8.TryWrite(buffer, $"PROXY {family} {from.Address} {to.Address} {from.Port} {to.Port}\r\n", out var written)
            ? written
            : throw new InvalidOperationException("A version 1 PROXY header did not fit its 107 bytes.");
    }

    private static int WriteV1Unknown(Span<byte> buffer)
    {
        "PROXY UNKNOWN\r\n"u8.CopyTo(buffer);
        return 15;
    }

    /// <summary>§2.2: signature, version 2 and command PROXY (0x21), family and transport, length, addresses, ports.</summary>
    private static int WriteV2(IPEndPoint? from, IPEndPoint? to, Span<byte> buffer)
    {
        V2Signature.CopyTo(buffer);
        buffer[12] = 0x21;
        if (from is null || to is null)
        {
            buffer[13] = 0x00; // AF_UNSPEC: the receiver uses the connection's own addresses
            BinaryPrimitives.WriteUInt16BigEndian(buffer[14..], 0);
            return 16;
        }

        var v4 = from.AddressFamily == AddressFamily.InterNetwork;
        var size = v4 ? 4 : 16;
        buffer[13] = v4 ? (byte)0x11 : (byte)0x21; // TCP over IPv4 / TCP over IPv6
        BinaryPrimitives.WriteUInt16BigEndian(buffer[14..], (ushort)((2 * size) + 4));
        var addresses = buffer[16..];
        if (!from.Address.TryWriteBytes(addresses, out _) || !to.Address.TryWriteBytes(addresses[size..], out _))
        {
            throw new InvalidOperationException("An address did not fit the version 2 PROXY header.");
        }

        BinaryPrimitives.WriteUInt16BigEndian(addresses[(2 * size)..], (ushort)from.Port);
        BinaryPrimitives.WriteUInt16BigEndian(addresses[((2 * size) + 2)..], (ushort)to.Port);
        return 16 + (2 * size) + 4;
    }
}
