using System.Net;
using System.Text;
using Gatehouse.Edge.Passthrough;
using Gatehouse.Sites;

namespace Gatehouse.Tests.Edge;

/// <summary>The PROXY header writer against HAProxy's proxy-protocol.txt, byte for byte.</summary>
public sealed class ProxyProtocolHeaderTests
{
    private static readonly byte[] Signature = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

    [Theory]
    // §2.1: "PROXY" SP "TCP4"|"TCP6" SP source SP destination SP sport SP dport CRLF
    [InlineData("192.0.2.1", 56324, "198.51.100.7", 443, "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n")]
    [InlineData("2001:db8::1", 1234, "2001:db8::2", 8443, "PROXY TCP6 2001:db8::1 2001:db8::2 1234 8443\r\n")]
    // IPv4 clients on a dual-stack listener arrive IPv4-mapped: sent as TCP4.
    [InlineData("::ffff:192.0.2.1", 40000, "::ffff:127.0.0.1", 8443, "PROXY TCP4 192.0.2.1 127.0.0.1 40000 8443\r\n")]
    // Mixed families: both as IPv6, the IPv4 one mapped.
    [InlineData("2001:db8::1", 1, "198.51.100.7", 443, "PROXY TCP6 2001:db8::1 ::ffff:198.51.100.7 1 443\r\n")]
    // Scope ids are not part of the format.
    [InlineData("fe80::1%2", 65535, "fe80::2%2", 443, "PROXY TCP6 fe80::1 fe80::2 65535 443\r\n")]
    public void Write_V1_IsTheSpecsTextLine(string source, int sourcePort, string destination, int destinationPort, string expected)
    {
        Assert.Equal(expected, Encoding.ASCII.GetString(Write(ProxyProtocolVersion.V1, new IPEndPoint(IPAddress.Parse(source), sourcePort), new IPEndPoint(IPAddress.Parse(destination), destinationPort))));
    }

    [Fact]
    public void Write_V1LongestAddresses_FitsThe107ByteLimit()
    {
        var longest = IPAddress.Parse("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
        var header = Write(ProxyProtocolVersion.V1, new IPEndPoint(longest, 65535), new IPEndPoint(longest, 65535));
        Assert.True(header.Length <= 107);
        Assert.EndsWith("65535 65535\r\n", Encoding.ASCII.GetString(header), StringComparison.Ordinal);
    }

    [Fact]
    public void Write_V2Ipv4_IsSignatureCommandFamilyLengthAddressesPorts()
    {
        var header = Write(ProxyProtocolVersion.V2, new IPEndPoint(IPAddress.Parse("192.0.2.1"), 56324), new IPEndPoint(IPAddress.Parse("198.51.100.7"), 443));
        byte[] expected =
        [
            .. Signature,
            0x21, // version 2, command PROXY
            0x11, // AF_INET, STREAM
            0x00, 0x0C, // 12 bytes follow
            192, 0, 2, 1, // source address
            198, 51, 100, 7, // destination address
            0xDC, 0x04, // source port 56324
            0x01, 0xBB, // destination port 443
        ];
        Assert.Equal(expected, header);
    }

    [Fact]
    public void Write_V2Ipv6_Carries36BytesOfAddresses()
    {
        var header = Write(ProxyProtocolVersion.V2, new IPEndPoint(IPAddress.Parse("2001:db8::1"), 1234), new IPEndPoint(IPAddress.Parse("2001:db8::2"), 8443));
        byte[] expected =
        [
            .. Signature,
            0x21,
            0x21, // AF_INET6, STREAM
            0x00, 0x24, // 36 bytes follow
            0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
            0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
            0x04, 0xD2, // 1234
            0x20, 0xFB, // 8443
        ];
        Assert.Equal(expected, header);
    }

    [Fact]
    public void Write_V2MappedIpv4_IsSentAsIpv4()
    {
        var header = Write(ProxyProtocolVersion.V2, new IPEndPoint(IPAddress.Parse("::ffff:127.0.0.1"), 5000), new IPEndPoint(IPAddress.Parse("::ffff:127.0.0.1"), 8443));
        Assert.Equal(28, header.Length);
        Assert.Equal(0x11, header[13]);
        Assert.Equal(new byte[] { 127, 0, 0, 1, 127, 0, 0, 1 }, header[16..24]);
    }

    [Fact]
    public void Write_EndpointsThatAreNotIp_SayUnknown()
    {
        var unix = new DnsEndPoint("localhost", 1);
        Assert.Equal("PROXY UNKNOWN\r\n", Encoding.ASCII.GetString(Write(ProxyProtocolVersion.V1, unix, null)));
        Assert.Equal([.. Signature, 0x21, 0x00, 0x00, 0x00], Write(ProxyProtocolVersion.V2, null, unix)); // AF_UNSPEC, no addresses
    }

    [Fact]
    public void Write_None_WritesNothing()
    {
        Assert.Empty(Write(ProxyProtocolVersion.None, new IPEndPoint(IPAddress.Loopback, 1), new IPEndPoint(IPAddress.Loopback, 2)));
    }

    [Fact]
    public void Write_ShortBuffer_IsMisuse()
    {
        Assert.Throws<ArgumentException>(() => ProxyProtocolHeader.Write(ProxyProtocolVersion.V1, null, null, new byte[ProxyProtocolHeader.MaxLength - 1]));
    }

    private static byte[] Write(ProxyProtocolVersion version, EndPoint? source, EndPoint? destination)
    {
        var buffer = new byte[ProxyProtocolHeader.MaxLength];
        return buffer[..ProxyProtocolHeader.Write(version, source, destination, buffer)];
    }
}
