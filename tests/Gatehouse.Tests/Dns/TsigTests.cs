using System.Buffers.Binary;
using Gatehouse.Dns;

namespace Gatehouse.Tests.Dns;

public sealed class TsigTests
{
    private static readonly DateTimeOffset VectorTime = DateTimeOffset.FromUnixTimeSeconds(TsigVectors.TimeSigned);

    public sealed record Vector(string Label, TsigAlgorithm Algorithm, byte[] Secret, byte[] Request, byte[] RequestMac, byte[] Response)
    {
        public override string ToString() => Label;
    }

    public static TheoryData<Vector> Vectors => new()
    {
        new Vector("RFC 8945 §4.3.1/§6 hmac-sha256 (dnspython)", TsigAlgorithm.HmacSha256, TsigVectors.Sha256Secret, TsigVectors.Sha256Request, TsigVectors.Sha256RequestMac, TsigVectors.Sha256Response),
        new Vector("RFC 8945 §4.3.1/§6 hmac-sha512 (dnspython)", TsigAlgorithm.HmacSha512, TsigVectors.Sha512Secret, TsigVectors.Sha512Request, TsigVectors.Sha512RequestMac, TsigVectors.Sha512Response),
    };

    private static (byte[] Unsigned, DnsMessage Parsed) Strip(byte[] signed)
    {
        Assert.True(DnsMessage.TryParse(signed, out var parsed, out _));
        var unsigned = signed[..parsed.TsigOffset];
        BinaryPrimitives.WriteUInt16BigEndian(unsigned.AsSpan(10), (ushort)(parsed.Additionals.Count - 1));
        return (unsigned, parsed);
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Sign_Request_MatchesTheVectorByteForByte(Vector vector)
    {
        using var key = new TsigKey("gatehouse", vector.Algorithm, vector.Secret);
        var (unsigned, _) = Strip(vector.Request);

        var (signed, mac) = Tsig.Sign(unsigned, key, VectorTime);

        Assert.Equal(Convert.ToHexString(vector.Request), Convert.ToHexString(signed));
        Assert.Equal(vector.RequestMac, mac);
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Sign_Response_CoversTheRequestMac(Vector vector) // RFC 8945 §4.3.1: request MAC first
    {
        using var key = new TsigKey("gatehouse", vector.Algorithm, vector.Secret);
        var (unsigned, _) = Strip(vector.Response);

        var (signed, _) = Tsig.Sign(unsigned, key, VectorTime, requestMac: vector.RequestMac);

        Assert.Equal(Convert.ToHexString(vector.Response), Convert.ToHexString(signed));
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Verify_TheVectorResponse_IsValid(Vector vector)
    {
        using var key = new TsigKey("gatehouse.", vector.Algorithm, vector.Secret);
        Assert.True(DnsMessage.TryParse(vector.Response, out var parsed, out _));

        var check = Tsig.Verify(vector.Response, parsed, key, vector.RequestMac, VectorTime.AddSeconds(299));

        Assert.Equal(new TsigCheck(TsigStatus.Valid, DnsResponseCode.NoError, TsigVectors.TimeSigned), check);
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Verify_AnyAlteredOctetBeforeTheTsigRecord_IsBadMac(Vector vector)
    {
        using var key = new TsigKey("gatehouse", vector.Algorithm, vector.Secret);
        Assert.True(DnsMessage.TryParse(vector.Response, out var original, out _));
        for (var i = 2; i < original.TsigOffset; i++) // the ID is replaced by the original ID for the digest (§4.3.1)
        {
            var altered = (byte[])vector.Response.Clone();
            altered[i] ^= 0x01;
            if (!DnsMessage.TryParse(altered, out var parsed, out _) || parsed.Tsig is null)
            {
                continue;
            }

            Assert.NotEqual(TsigStatus.Valid, Tsig.Verify(altered, parsed, key, vector.RequestMac, VectorTime).Status);
        }
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Verify_OtherRequestMac_IsBadMac(Vector vector)
    {
        using var key = new TsigKey("gatehouse", vector.Algorithm, vector.Secret);
        Assert.True(DnsMessage.TryParse(vector.Response, out var parsed, out _));
        var otherMac = (byte[])vector.RequestMac.Clone();
        otherMac[0] ^= 0x80;

        Assert.Equal(TsigStatus.BadMac, Tsig.Verify(vector.Response, parsed, key, otherMac, VectorTime).Status);
    }

    [Fact]
    public void Verify_OtherSecret_IsBadMac()
    {
        using var key = new TsigKey("gatehouse", TsigAlgorithm.HmacSha256, new byte[32]);
        Assert.True(DnsMessage.TryParse(TsigVectors.Sha256Response, out var parsed, out _));

        Assert.Equal(TsigStatus.BadMac, Tsig.Verify(TsigVectors.Sha256Response, parsed, key, TsigVectors.Sha256RequestMac, VectorTime).Status);
    }

    [Fact]
    public void Verify_OtherKeyName_IsOtherKey()
    {
        using var key = new TsigKey("someone-else", TsigAlgorithm.HmacSha256, TsigVectors.Sha256Secret);
        Assert.True(DnsMessage.TryParse(TsigVectors.Sha256Response, out var parsed, out _));

        Assert.Equal(TsigStatus.OtherKey, Tsig.Verify(TsigVectors.Sha256Response, parsed, key, TsigVectors.Sha256RequestMac, VectorTime).Status);
    }

    [Theory]
    [InlineData(-301)]
    [InlineData(301)]
    [InlineData(86_400)]
    public void Verify_OutsideTheFudge_IsBadTime(int skewSeconds) // RFC 8945 §5.2.3
    {
        using var key = new TsigKey("gatehouse", TsigAlgorithm.HmacSha256, TsigVectors.Sha256Secret);
        Assert.True(DnsMessage.TryParse(TsigVectors.Sha256Response, out var parsed, out _));

        Assert.Equal(TsigStatus.BadTime, Tsig.Verify(TsigVectors.Sha256Response, parsed, key, TsigVectors.Sha256RequestMac, VectorTime.AddSeconds(skewSeconds)).Status);
    }

    [Fact]
    public void Verify_NoTsigRecord_IsUnsigned()
    {
        using var key = new TsigKey("gatehouse", TsigAlgorithm.HmacSha256, TsigVectors.Sha256Secret);
        var (unsigned, _) = Strip(TsigVectors.Sha256Response);
        Assert.True(DnsMessage.TryParse(unsigned, out var parsed, out _));

        Assert.Equal(TsigStatus.Unsigned, Tsig.Verify(unsigned, parsed, key, TsigVectors.Sha256RequestMac, VectorTime).Status);
    }

    [Theory]
    [InlineData(DnsResponseCode.BadSig)]
    [InlineData(DnsResponseCode.BadKey)]
    public void Verify_ServerErrorWithEmptyMac_IsServerError(DnsResponseCode error) // RFC 8945 §5.3.2
    {
        using var key = new TsigKey("gatehouse", TsigAlgorithm.HmacSha256, TsigVectors.Sha256Secret);
        var response = new DnsMessage
        {
            Id = 1,
            IsResponse = true,
            Opcode = DnsOpcode.Update,
            ResponseCode = DnsResponseCode.NotAuth,
            Additionals = [new DnsRecord("gatehouse.", DnsRecordType.TSIG, DnsClass.ANY, 0, new TsigData("hmac-sha256.", TsigVectors.TimeSigned, 300, [], 1, error, []))],
        }.ToArray();
        Assert.True(DnsMessage.TryParse(response, out var parsed, out _));

        Assert.Equal(new TsigCheck(TsigStatus.ServerError, error, TsigVectors.TimeSigned), Tsig.Verify(response, parsed, key, TsigVectors.Sha256RequestMac, VectorTime));
    }

    [Fact]
    public void TsigKey_ToString_ShowsNoSecret()
    {
        var secret = Enumerable.Repeat((byte)0x5A, 32).ToArray();
        using var key = new TsigKey("Gatehouse", TsigAlgorithm.HmacSha512, secret);

        Assert.Equal("TSIG key gatehouse. (hmac-sha512)", key.ToString());
        Assert.Equal(64, key.MacLength);
    }

    [Fact]
    public void TsigKey_Disposed_CannotSign()
    {
        var key = new TsigKey("gatehouse", TsigAlgorithm.HmacSha256, TsigVectors.Sha256Secret);
        key.Dispose();
        Assert.Throws<ObjectDisposedException>(() => Tsig.Sign(new DnsMessage().ToArray(), key, VectorTime));
    }

    [Fact]
    public void TsigKey_EmptySecret_Throws() => Assert.Throws<ArgumentException>(() => new TsigKey("gatehouse", TsigAlgorithm.HmacSha256, []));

    [Fact]
    public void Rfc2136Options_ToString_HidesTheSecret()
    {
        var options = new Rfc2136Options { Server = "127.0.0.1:53", KeyName = "gatehouse", Secret = "top-secret-bytes"u8.ToArray() };
        Assert.DoesNotContain("System.Byte", options.ToString());
        Assert.Contains("Secret = (hidden)", options.ToString());
    }
}
