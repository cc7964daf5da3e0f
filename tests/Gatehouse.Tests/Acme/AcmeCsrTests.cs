using System.Formats.Asn1;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Acme;

namespace Gatehouse.Tests.Acme;

public sealed class AcmeCsrTests
{
    public static TheoryData<AcmeCertificateKeyType, string, int> KeyTypes => new()
    {
        { AcmeCertificateKeyType.EcdsaP256, "1.2.840.10045.4.3.2", 256 },
        { AcmeCertificateKeyType.EcdsaP384, "1.2.840.10045.4.3.3", 384 },
        { AcmeCertificateKeyType.Rsa2048, "1.2.840.113549.1.1.11", 2048 },
        { AcmeCertificateKeyType.Rsa3072, "1.2.840.113549.1.1.11", 3072 },
    };

    [Theory]
    [MemberData(nameof(KeyTypes))]
    public void Create_EachKeyType_SignedRequestWithEveryName(AcmeCertificateKeyType type, string signatureOid, int keySize)
    {
        using var key = AcmeCsr.CreateKey(type);
        string[] names = ["www.example.test", "*.example.test", "192.0.2.5"];

        var der = AcmeCsr.Create(key, names);

        var request = CertificateRequest.LoadSigningRequest(der, HashAlgorithmName.SHA256, CertificateRequestLoadOptions.UnsafeLoadCertificateExtensions);
        Assert.Equal("CN=www.example.test", request.SubjectName.Name);
        Assert.Equal(keySize, KeySize(request.PublicKey));
        var san = AlternativeNames(request);
        Assert.Equal(["www.example.test", "*.example.test"], san.EnumerateDnsNames());
        Assert.Equal([IPAddress.Parse("192.0.2.5")], san.EnumerateIPAddresses());
        Assert.Equal(signatureOid, SignatureAlgorithm(der));
    }

    [Fact]
    public void CreateKey_Rsa4096_HasThatSize()
    {
        using var key = AcmeCsr.CreateKey(AcmeCertificateKeyType.Rsa4096);

        Assert.Equal(4096, key.KeySize);
    }

    [Fact]
    public void Create_FirstNameLongerThanACommonName_EmptySubjectAndCriticalSan()
    {
        using var key = AcmeCsr.CreateKey(AcmeCertificateKeyType.EcdsaP256);
        var longName = new string('a', 60) + ".example.test";

        var request = CertificateRequest.LoadSigningRequest(AcmeCsr.Create(key, [longName]), HashAlgorithmName.SHA256, CertificateRequestLoadOptions.UnsafeLoadCertificateExtensions);

        Assert.Equal("", request.SubjectName.Name);
        Assert.True(AlternativeNames(request).Critical);
    }

    [Fact]
    public void Create_NoNames_Throws()
    {
        using var key = AcmeCsr.CreateKey(AcmeCertificateKeyType.EcdsaP256);

        Assert.Throws<ArgumentException>(() => AcmeCsr.Create(key, []));
    }

    private static X509SubjectAlternativeNameExtension AlternativeNames(CertificateRequest request)
    {
        var extension = request.CertificateExtensions.Single(e => e.Oid?.Value == "2.5.29.17");
        return new X509SubjectAlternativeNameExtension(extension.RawData, extension.Critical);
    }

    private static int KeySize(PublicKey key)
    {
        using var publicKey = key.GetECDsaPublicKey() as AsymmetricAlgorithm ?? key.GetRSAPublicKey()!;
        return publicKey.KeySize;
    }

    // CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm AlgorithmIdentifier, signature }
    private static string SignatureAlgorithm(byte[] der)
    {
        var request = new AsnReader(der, AsnEncodingRules.DER).ReadSequence();
        request.ReadEncodedValue();
        return request.ReadSequence().ReadObjectIdentifier();
    }
}
