using System.Buffers.Text;
using System.Formats.Asn1;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Gatehouse.Acme;

namespace Gatehouse.Tests.Acme;

public sealed class AcmeChallengeAnswerTests
{
    private const string Token = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA";

    [Fact]
    public void Answer_Http01_TokenDotThumbprintAtTheWellKnownPath()
    {
        using var key = AcmeAccountKey.Create();

        var answer = Answer(key, AcmeIdentifier.Dns("www.example.test"), AcmeChallenge.Http01);

        Assert.Equal(Token + "." + key.Thumbprint, answer.KeyAuthorization);
        Assert.Equal(answer.KeyAuthorization, answer.Http01Body);
        Assert.Equal("/.well-known/acme-challenge/" + Token, answer.Http01Path);
    }

    [Fact]
    public void Answer_Dns01_Base64UrlSha256OfTheKeyAuthorizationUnderAcmeChallenge()
    {
        using var key = AcmeAccountKey.Create();

        var answer = Answer(key, AcmeIdentifier.Dns("example.test"), AcmeChallenge.Dns01, wildcard: true);

        Assert.Equal("_acme-challenge.example.test", answer.Dns01RecordName);
        Assert.Equal(Base64Url.EncodeToString(SHA256.HashData(Encoding.ASCII.GetBytes(answer.KeyAuthorization))), answer.Dns01TxtValue);
        Assert.Equal(43, answer.Dns01TxtValue.Length);
        Assert.Equal("_acme-challenge.example.test", AcmeKeyAuthorization.Dns01RecordName("*.example.test"));
    }

    [Fact]
    public void CreateTlsAlpn01Certificate_Rfc8737Fields()
    {
        using var key = AcmeAccountKey.Create();
        var answer = Answer(key, AcmeIdentifier.Dns("www.example.test"), AcmeChallenge.TlsAlpn01);

        using var certificate = answer.CreateTlsAlpn01Certificate();

        Assert.True(certificate.HasPrivateKey);
        Assert.Equal(certificate.SubjectName.RawData, certificate.IssuerName.RawData);
        var san = certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        Assert.Equal(["www.example.test"], san.EnumerateDnsNames());
        Assert.Empty(san.EnumerateIPAddresses());
        var acmeIdentifier = certificate.Extensions[AcmeKeyAuthorization.AcmeIdentifierOid]!;
        Assert.True(acmeIdentifier.Critical);
        var digest = new AsnReader(acmeIdentifier.RawData, AsnEncodingRules.DER).ReadOctetString();
        Assert.Equal(SHA256.HashData(Encoding.ASCII.GetBytes(answer.KeyAuthorization)), digest);
        Assert.Equal(34, acmeIdentifier.RawData.Length);
        Assert.True(certificate.NotBefore < DateTime.Now && certificate.NotAfter > DateTime.Now);
    }

    [Fact]
    public void CreateTlsAlpn01Certificate_IpIdentifier_IpAddressSan()
    {
        using var certificate = AcmeKeyAuthorization.CreateTlsAlpn01Certificate(AcmeIdentifier.FromName("192.0.2.7"), "token.thumb");

        var san = certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        Assert.Equal([IPAddress.Parse("192.0.2.7")], san.EnumerateIPAddresses());
        Assert.Empty(san.EnumerateDnsNames());
    }

    [Theory]
    [InlineData("example.test", "dns")]
    [InlineData("*.example.test", "dns")]
    [InlineData("192.0.2.1", "ip")]
    [InlineData("2001:db8::1", "ip")]
    public void FromName_IpAddressesBecomeIpIdentifiers(string name, string type)
    {
        var identifier = AcmeIdentifier.FromName(name);

        Assert.Equal(type, identifier.Type);
        Assert.Equal(name.StartsWith("*.", StringComparison.Ordinal), identifier.IsWildcard);
    }

    private static AcmeChallengeAnswer Answer(AcmeAccountKey key, AcmeIdentifier identifier, string type, bool wildcard = false)
    {
        var challenge = new AcmeChallenge { Type = type, Url = new Uri("https://acme.test/chall/1"), Status = AcmeChallengeStatus.Pending, Token = Token };
        var authorization = new AcmeAuthorization
        {
            Url = new Uri("https://acme.test/authz/1"),
            Identifier = identifier,
            Status = AcmeAuthorizationStatus.Pending,
            Challenges = [challenge],
            Wildcard = wildcard,
        };
        return new AcmeChallengeAnswer { Authorization = authorization, Challenge = challenge, KeyAuthorization = AcmeKeyAuthorization.Compute(Token, key) };
    }
}
