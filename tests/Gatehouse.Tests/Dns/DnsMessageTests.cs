using System.Net;
using Gatehouse.Dns;

namespace Gatehouse.Tests.Dns;

public sealed class DnsMessageTests
{
    private static DnsMessage Update() => new()
    {
        Id = 0xBEEF,
        Opcode = DnsOpcode.Update,
        Questions = [new DnsQuestion("acme.test.", DnsRecordType.SOA)],
        Authorities =
        [
            new DnsRecord("_acme-challenge.a.acme.test.", DnsRecordType.TXT, DnsClass.IN, 60, TxtData.FromValue("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0")),
            new DnsRecord("_acme-challenge.a.acme.test.", DnsRecordType.TXT, DnsClass.NONE, 0, TxtData.FromValue("old")),
            new DnsRecord("_acme-challenge.b.acme.test.", DnsRecordType.TXT, DnsClass.ANY, 0, EmptyData.Instance),
        ],
    };

    [Fact]
    public void ToArrayThenTryParse_Update_RoundTrips()
    {
        Assert.True(DnsMessage.TryParse(Update().ToArray(), out var parsed, out var error), error);

        Assert.Equal(0xBEEF, parsed.Id);
        Assert.Equal(DnsOpcode.Update, parsed.Opcode);
        Assert.False(parsed.IsResponse);
        Assert.Equal(new DnsQuestion("acme.test.", DnsRecordType.SOA), Assert.Single(parsed.Questions));
        Assert.Equal(3, parsed.Authorities.Count);
        Assert.Equal(("_acme-challenge.a.acme.test.", DnsClass.IN, 60u), (parsed.Authorities[0].Name, parsed.Authorities[0].Class, parsed.Authorities[0].Ttl));
        Assert.Equal("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0", ((TxtData)parsed.Authorities[0].Data).Value);
        Assert.Equal(DnsClass.NONE, parsed.Authorities[1].Class);
        Assert.Same(EmptyData.Instance, parsed.Authorities[2].Data);
        Assert.Equal(-1, parsed.TsigOffset);
    }

    [Fact]
    public void ToArrayThenTryParse_ResponseWithEveryRecordType_RoundTrips()
    {
        var message = new DnsMessage
        {
            Id = 7,
            IsResponse = true,
            Authoritative = true,
            Truncated = true,
            RecursionDesired = true,
            RecursionAvailable = true,
            ResponseCode = DnsResponseCode.NXDomain,
            Questions = [new DnsQuestion("acme.test.", DnsRecordType.ANY)],
            Answers =
            [
                new DnsRecord("acme.test.", DnsRecordType.SOA, DnsClass.IN, 60, new SoaData("ns.acme.test.", "hostmaster.acme.test.", 1, 2, 3, 4, 5)),
                new DnsRecord("acme.test.", DnsRecordType.NS, DnsClass.IN, 60, new NameData("ns.acme.test.")),
                new DnsRecord("ns.acme.test.", DnsRecordType.A, DnsClass.IN, 60, new AddressData(IPAddress.Loopback)),
                new DnsRecord("ns.acme.test.", DnsRecordType.AAAA, DnsClass.IN, 60, new AddressData(IPAddress.IPv6Loopback)),
                new DnsRecord("x.acme.test.", (DnsRecordType)99, DnsClass.IN, 60, new RawData([1, 2, 3])),
            ],
        };

        Assert.True(DnsMessage.TryParse(message.ToArray(), out var parsed, out var error), error);

        Assert.Equal((true, true, true, true, true, DnsResponseCode.NXDomain),
            (parsed.IsResponse, parsed.Authoritative, parsed.Truncated, parsed.RecursionDesired, parsed.RecursionAvailable, parsed.ResponseCode));
        Assert.Equal(new SoaData("ns.acme.test.", "hostmaster.acme.test.", 1, 2, 3, 4, 5), parsed.Answers[0].Data);
        Assert.Equal(new NameData("ns.acme.test."), parsed.Answers[1].Data);
        Assert.Equal(IPAddress.Loopback, ((AddressData)parsed.Answers[2].Data).Address);
        Assert.Equal(IPAddress.IPv6Loopback, ((AddressData)parsed.Answers[3].Data).Address);
        Assert.Equal(new byte[] { 1, 2, 3 }, ((RawData)parsed.Answers[4].Data).Bytes);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(43)]
    [InlineData(255)]
    [InlineData(256)]
    [InlineData(1000)]
    public void TxtData_LongValues_SplitInto255OctetStrings(int length)
    {
        var value = new string('v', length);
        var txt = TxtData.FromValue(value);
        var message = new DnsMessage { Answers = [new DnsRecord("a.", DnsRecordType.TXT, DnsClass.IN, 1, txt)] };

        Assert.True(DnsMessage.TryParse(message.ToArray(), out var parsed, out _));

        var read = (TxtData)parsed.Answers[0].Data;
        Assert.Equal(value, read.Value);
        Assert.Equal(Math.Max(1, (length + 254) / 255), read.Strings.Count);
        Assert.All(read.Strings, s => Assert.True(s.Length <= 255));
    }

    [Fact]
    public void TxtData_Utf8_RoundTripsByteForByte()
    {
        var value = new string('é', 200); // 400 octets: the split falls inside a character
        Assert.True(DnsMessage.TryParse(new DnsMessage { Answers = [new DnsRecord("a.", DnsRecordType.TXT, DnsClass.IN, 1, TxtData.FromValue(value))] }.ToArray(), out var parsed, out _));
        Assert.Equal(value, ((TxtData)parsed.Answers[0].Data).Value);
    }

    /// <summary>An UPDATE written by another implementation (dnspython 2.3), with compressed names and a TSIG record.</summary>
    [Fact]
    public void TryParse_CompressedUpdateFromAnotherImplementation_ReadsEveryRecord()
    {
        Assert.True(DnsMessage.TryParse(TsigVectors.Sha256Request, out var parsed, out var error), error);

        Assert.Equal(("acme.test.", DnsRecordType.SOA), (parsed.Questions[0].Name, parsed.Questions[0].Type));
        Assert.Equal("_acme-challenge.a.acme.test.", parsed.Authorities[0].Name);
        Assert.Equal("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0", ((TxtData)parsed.Authorities[0].Data).Value);
        Assert.Equal(("_acme-challenge.a.acme.test.", DnsClass.NONE, "old"), (parsed.Authorities[1].Name, parsed.Authorities[1].Class, ((TxtData)parsed.Authorities[1].Data).Value));
        var tsig = Assert.IsType<TsigData>(parsed.Tsig!.Data);
        Assert.Equal(("hmac-sha256.", 1_700_000_000L, (ushort)300, 32), (tsig.Algorithm, tsig.TimeSigned, tsig.Fudge, tsig.Mac.Length));
        Assert.Equal(TsigVectors.Sha256Request.Length - 82, parsed.TsigOffset); // owner 11 + fixed 10 + RDATA 61
    }

    [Fact]
    public void TryParse_EveryTruncation_ReturnsFalseWithoutThrowing()
    {
        var bytes = TsigVectors.Sha256Request;
        for (var length = 0; length < bytes.Length; length++)
        {
            Assert.False(DnsMessage.TryParse(bytes.AsSpan(0, length), out _, out var error));
            Assert.False(string.IsNullOrEmpty(error));
        }
    }

    [Fact]
    public void TryParse_RandomMutations_NeverThrow()
    {
        var random = new Random(8945);
        var original = TsigVectors.Sha256Request;
        for (var i = 0; i < 20_000; i++)
        {
            var bytes = (byte[])original.Clone();
            for (var flips = random.Next(1, 4); flips > 0; flips--)
            {
                bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            }

            Assert.True(DnsMessage.TryParse(bytes, out var message, out var error) ? message is not null : error is not null);
        }

        for (var i = 0; i < 5_000; i++)
        {
            var bytes = new byte[random.Next(0, 600)];
            random.NextBytes(bytes);
            Assert.True(DnsMessage.TryParse(bytes, out var message, out var error) ? message is not null : error is not null);
        }
    }

    [Fact]
    public void TryParse_TrailingOctets_ReturnsFalse()
    {
        byte[] bytes = [.. Update().ToArray(), 0];
        Assert.False(DnsMessage.TryParse(bytes, out _, out var error));
        Assert.Contains("follow", error);
    }

    [Fact]
    public void TryParse_CountsLargerThanTheMessage_ReturnsFalse()
    {
        var bytes = Update().ToArray();
        bytes[8] = 0xFF; // NSCOUNT = 65,535+
        Assert.False(DnsMessage.TryParse(bytes, out _, out var error));
        Assert.Contains("counts", error);
    }

    [Fact]
    public void TryParse_TxtStringLongerThanItsRdata_ReturnsFalse()
    {
        var message = new DnsMessage { Answers = [new DnsRecord("a.", DnsRecordType.TXT, DnsClass.IN, 1, new TxtData(["abc"]))] };
        var bytes = message.ToArray();
        bytes[^4] = 10; // the character-string's length octet claims more than RDLENGTH holds
        Assert.False(DnsMessage.TryParse(bytes, out _, out var error));
        Assert.Contains("RDATA", error);
    }

    [Fact]
    public void TryParse_AddressOfWrongLength_ReturnsFalse()
    {
        var bytes = new DnsMessage { Answers = [new DnsRecord("a.", DnsRecordType.A, DnsClass.IN, 1, new RawData([1, 2, 3]))] }.ToArray();
        Assert.False(DnsMessage.TryParse(bytes, out _, out _));
    }
}
