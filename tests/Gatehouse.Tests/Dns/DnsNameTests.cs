using Gatehouse.Dns;

namespace Gatehouse.Tests.Dns;

public sealed class DnsNameTests
{
    [Theory]
    [InlineData("example.com", "example.com.")]
    [InlineData("_acme-challenge.Example.COM.", "_acme-challenge.Example.COM.")]
    [InlineData(".", ".")]
    public void Normalize_ValidNames_AreAbsolute(string name, string expected) => Assert.Equal(expected, DnsName.Normalize(name));

    [Theory]
    [InlineData("a..b")]
    [InlineData("has space.example")]
    [InlineData("back\\slash.example")]
    [InlineData("bücher.example")]
    [InlineData("")]
    public void Normalize_InvalidNames_Throw(string name) => Assert.ThrowsAny<ArgumentException>(() => DnsName.Normalize(name));

    [Fact]
    public void Normalize_LabelOf64_Throws() => Assert.Throws<ArgumentException>(() => DnsName.Normalize(new string('a', 64) + ".example"));

    [Fact]
    public void Normalize_NameOver255Octets_Throws()
    {
        var label = new string('a', 63);
        DnsName.Normalize($"{label}.{label}.{label}.{new string('a', 61)}"); // 4 + 63*3 + 61 + 1 = 255 octets
        Assert.Throws<ArgumentException>(() => DnsName.Normalize($"{label}.{label}.{label}.{new string('a', 62)}"));
    }

    [Theory]
    [InlineData("_acme-challenge.a.acme.test.", "acme.test.", true)]
    [InlineData("ACME.test.", "acme.test.", true)]
    [InlineData("xacme.test.", "acme.test.", false)]
    [InlineData("acme.test.", "a.acme.test.", false)]
    [InlineData("anything.", ".", true)]
    public void IsAtOrBelow_ComparesWholeLabels(string name, string zone, bool expected) => Assert.Equal(expected, DnsName.IsAtOrBelow(name, zone));

    [Theory]
    [InlineData("a.b.c.", "b.c.")]
    [InlineData("c.", ".")]
    [InlineData(".", ".")]
    public void Parent_DropsTheFirstLabel(string name, string expected) => Assert.Equal(expected, DnsName.Parent(name));

    [Fact]
    public void WriteThenRead_RoundTrips()
    {
        var writer = new DnsWriter();
        DnsName.Write(writer, "_acme-challenge.Sub.Acme.Test.");
        var offset = 0;

        Assert.True(DnsName.TryRead(writer.WrittenSpan, ref offset, out var name));
        Assert.Equal("_acme-challenge.Sub.Acme.Test.", name);
        Assert.Equal(writer.Length, offset);
    }

    [Fact]
    public void Write_Lowercase_GivesCanonicalForm()
    {
        var writer = new DnsWriter();
        DnsName.Write(writer, "GateHouse.", lowercase: true);
        Assert.Equal("\u0009gatehouse\0"u8.ToArray(), writer.ToArray());
    }

    [Fact]
    public void TryRead_CompressionPointer_FollowsItAndEndsAfterThePointer()
    {
        // "acme.test." at 0, then "www" + pointer to 0 at 11.
        byte[] message = [4, .. "acme"u8, 4, .. "test"u8, 0, 3, .. "www"u8, 0xC0, 0x00, 0xFF];
        var offset = 11;

        Assert.True(DnsName.TryRead(message, ref offset, out var name));
        Assert.Equal("www.acme.test.", name);
        Assert.Equal(17, offset);
    }

    [Fact]
    public void TryRead_PointerToItself_IsRefused()
    {
        byte[] message = [0xC0, 0x00];
        var offset = 0;
        Assert.False(DnsName.TryRead(message, ref offset, out _));
    }

    [Fact]
    public void TryRead_PointersThatLoop_AreRefused()
    {
        // At 0 a label then a pointer to 4; at 4 a pointer back to 0: a loop, refused because 4 points forward.
        byte[] message = [1, (byte)'a', 0xC0, 0x04, 0xC0, 0x00];
        var offset = 0;
        Assert.False(DnsName.TryRead(message, ref offset, out _));
        offset = 4;
        Assert.False(DnsName.TryRead(message, ref offset, out _));
    }

    [Fact]
    public void TryRead_ChainOfPointersBuildingAHugeName_IsRefused()
    {
        // Each entry is a 63-octet label followed by a pointer to the previous entry: the name grows past 255 octets.
        var message = new List<byte> { 0 };
        var previous = 0;
        for (var i = 0; i < 6; i++)
        {
            var start = message.Count;
            message.Add(63);
            message.AddRange(Enumerable.Repeat((byte)'a', 63));
            message.Add((byte)(0xC0 | (previous >> 8)));
            message.Add((byte)previous);
            previous = start;
        }

        var offset = previous;
        Assert.False(DnsName.TryRead(message.ToArray(), ref offset, out _));
    }

    [Theory]
    [InlineData(new byte[] { 5, (byte)'a' })] // label past the end
    [InlineData(new byte[] { 0xC0 })] // half a pointer
    [InlineData(new byte[] { 0x40, 0 })] // extended label type
    [InlineData(new byte[] { 0x80, 0 })] // reserved label type
    [InlineData(new byte[] { 1, (byte)'a' })] // no terminating zero
    [InlineData(new byte[0])]
    public void TryRead_Malformed_ReturnsFalse(byte[] message)
    {
        var offset = 0;
        Assert.False(DnsName.TryRead(message, ref offset, out _));
    }

    [Fact]
    public void TryRead_UnprintableOctets_AreEscaped()
    {
        byte[] message = [3, (byte)'a', (byte)'.', 0x07, 0];
        var offset = 0;
        Assert.True(DnsName.TryRead(message, ref offset, out var name));
        Assert.Equal("a\\046\\007.", name);
    }
}
