using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Gatehouse.Acme;

namespace Gatehouse.Tests.Acme;

public sealed class JwsTests
{
    private static readonly Uri Url = new("https://acme.test/new-order");
    private static readonly Uri AccountUrl = new("https://acme.test/account/7");

    // RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint.
    private const string Rfc7638Modulus =
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    private const string Rfc7638Thumbprint = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

    public static TheoryData<AcmeKeyAlgorithm, string, int> Algorithms => new()
    {
        { AcmeKeyAlgorithm.Es256, "ES256", 64 },
        { AcmeKeyAlgorithm.Es384, "ES384", 96 },
        { AcmeKeyAlgorithm.Rs256, "RS256", 256 },
    };

    [Theory]
    [MemberData(nameof(Algorithms))]
    public void Sign_WithKid_VerifiesWithThePublicKey(AcmeKeyAlgorithm algorithm, string alg, int signatureLength)
    {
        using var key = AcmeAccountKey.Create(algorithm);
        var payload = "{\"identifiers\":[]}"u8.ToArray();

        var jws = Serialize(Jws.Sign(key, Url, "nonce-1", AccountUrl, payload));
        var header = FakeAcmeServer.DecodeHeader(jws);

        Assert.Equal(alg, header.GetProperty("alg").GetString());
        Assert.Equal("nonce-1", header.GetProperty("nonce").GetString());
        Assert.Equal(Url.AbsoluteUri, header.GetProperty("url").GetString());
        Assert.Equal(AccountUrl.AbsoluteUri, header.GetProperty("kid").GetString());
        Assert.False(header.TryGetProperty("jwk", out _));
        Assert.Equal(payload, Base64Url.DecodeFromChars(jws.GetProperty("payload").GetString()));
        Assert.Equal(signatureLength, Base64Url.DecodeFromChars(jws.GetProperty("signature").GetString()).Length);
        Assert.True(FakeAcmeServer.Verify(jws, Jwk(key)));
    }

    [Theory]
    [MemberData(nameof(Algorithms))]
    public void Sign_WithoutKid_CarriesTheJwkThatVerifiesIt(AcmeKeyAlgorithm algorithm, string alg, int signatureLength)
    {
        using var key = AcmeAccountKey.Create(algorithm);

        var jws = Serialize(Jws.Sign(key, Url, "nonce-1", null, "{}"u8.ToArray()));
        var header = FakeAcmeServer.DecodeHeader(jws);

        Assert.Equal(alg, header.GetProperty("alg").GetString());
        Assert.False(header.TryGetProperty("kid", out _));
        Assert.Equal(signatureLength, Base64Url.DecodeFromChars(jws.GetProperty("signature").GetString()).Length);
        Assert.True(FakeAcmeServer.Verify(jws, header.GetProperty("jwk")));
    }

    [Fact]
    public void Sign_TamperedPayload_DoesNotVerify()
    {
        using var key = AcmeAccountKey.Create();
        var jws = Jws.Sign(key, Url, "nonce-1", AccountUrl, "{\"a\":1}"u8.ToArray());

        var tampered = Serialize(jws with { Payload = Base64Url.EncodeToString("{\"a\":2}"u8) });

        Assert.False(FakeAcmeServer.Verify(tampered, Jwk(key)));
    }

    [Fact]
    public void Sign_PostAsGet_PayloadIsTheEmptyString()
    {
        using var key = AcmeAccountKey.Create();

        var jws = Serialize(Jws.Sign(key, Url, "nonce-1", AccountUrl, null));

        Assert.Equal("", jws.GetProperty("payload").GetString());
        Assert.True(FakeAcmeServer.Verify(jws, Jwk(key)));
    }

    [Fact]
    public void Thumbprint_Rfc7638Example_MatchesTheRfc()
    {
        using var rsa = RSA.Create(new RSAParameters { Modulus = Base64Url.DecodeFromChars(Rfc7638Modulus), Exponent = [1, 0, 1] });
        using var key = AcmeAccountKey.FromKey(rsa);

        Assert.Equal(Rfc7638Thumbprint, key.Thumbprint);
        Assert.Equal($"{{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"{Rfc7638Modulus}\"}}", Encoding.UTF8.GetString(key.JwkJson));
    }

    [Fact]
    public void Jwk_EcKey_CanonicalMembersWithFixedLengthCoordinates()
    {
        using var key = AcmeAccountKey.Create(AcmeKeyAlgorithm.Es384);

        var jwk = JsonDocument.Parse(key.JwkJson).RootElement;

        Assert.Equal(["crv", "kty", "x", "y"], jwk.EnumerateObject().Select(p => p.Name));
        Assert.Equal("P-384", jwk.GetProperty("crv").GetString());
        Assert.Equal(48, Base64Url.DecodeFromChars(jwk.GetProperty("x").GetString()).Length);
        Assert.Equal(48, Base64Url.DecodeFromChars(jwk.GetProperty("y").GetString()).Length);
        Assert.Equal(Base64Url.EncodeToString(SHA256.HashData(key.JwkJson)), key.Thumbprint);
    }

    [Theory]
    [InlineData(AcmeKeyAlgorithm.Es256)]
    [InlineData(AcmeKeyAlgorithm.Es384)]
    [InlineData(AcmeKeyAlgorithm.Rs256)]
    public void ImportPkcs8_ExportedKey_SameKeyAndAlgorithm(AcmeKeyAlgorithm algorithm)
    {
        using var key = AcmeAccountKey.Create(algorithm);
        var pkcs8 = key.ExportPkcs8PrivateKey();

        using var imported = AcmeAccountKey.ImportPkcs8(pkcs8);
        CryptographicOperations.ZeroMemory(pkcs8);

        Assert.Equal(algorithm, imported.Algorithm);
        Assert.Equal(key.Thumbprint, imported.Thumbprint);
        Assert.True(FakeAcmeServer.Verify(Serialize(Jws.Sign(imported, Url, "n", AccountUrl, null)), Jwk(key)));
    }

    [Fact]
    public void ImportPkcs8_NotAKey_Throws()
    {
        Assert.ThrowsAny<CryptographicException>(() => AcmeAccountKey.ImportPkcs8([0x30, 0x03, 0x02, 0x01, 0x00]));
    }

    [Fact]
    public void ExternalAccountBinding_Shape_Rfc8555Section734()
    {
        var macKey = RandomNumberGenerator.GetBytes(32);
        using var binding = new AcmeExternalAccountBinding("kid-1", macKey);
        using var accountKey = AcmeAccountKey.Create();
        var newAccount = new Uri("https://acme.test/new-account");

        var jws = Serialize(Jws.ExternalAccountBinding(binding, accountKey, newAccount));
        var header = FakeAcmeServer.DecodeHeader(jws);

        Assert.Equal(["alg", "kid", "url"], header.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal("HS256", header.GetProperty("alg").GetString());
        Assert.Equal("kid-1", header.GetProperty("kid").GetString());
        Assert.Equal(newAccount.AbsoluteUri, header.GetProperty("url").GetString());
        Assert.Equal(accountKey.JwkJson, Base64Url.DecodeFromChars(jws.GetProperty("payload").GetString()));
        var input = Encoding.ASCII.GetBytes(jws.GetProperty("protected").GetString() + "." + jws.GetProperty("payload").GetString());
        Assert.Equal(HMACSHA256.HashData(macKey, input), Base64Url.DecodeFromChars(jws.GetProperty("signature").GetString()));
    }

    [Theory]
    [InlineData("c2VjcmV0LW1hYy1rZXktMzItYnl0ZXMtbG9uZy4uLi4")]
    [InlineData("c2VjcmV0LW1hYy1rZXktMzItYnl0ZXMtbG9uZy4uLi4=")]
    public void ExternalAccountBinding_FromBase64Url_AcceptsPaddingAndHidesTheKey(string macKey)
    {
        using var binding = AcmeExternalAccountBinding.FromBase64Url("kid-1", macKey);

        Assert.Equal("kid-1", binding.KeyId);
        Assert.DoesNotContain("c2Vj", binding.ToString(), StringComparison.Ordinal);
    }

    private static JsonElement Serialize(FlattenedJws jws) => JsonSerializer.SerializeToElement(jws, AcmeJson.Default.FlattenedJws);

    private static JsonElement Jwk(AcmeAccountKey key) => JsonDocument.Parse(key.JwkJson).RootElement;
}
