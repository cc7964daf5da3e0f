using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Acme;

namespace Gatehouse.Tests.Acme;

/// <summary>The managed field reader against what OpenSSL (through <see cref="X509Certificate2"/>) reads from the same
/// certificates.</summary>
public sealed class CertificateFieldsTests
{
    [Theory]
    [InlineData("ec", new byte[] { 0x01, 0x02, 0x03 })]
    [InlineData("rsa", new byte[] { 0x00, 0x80, 0x11, 0x22 })] // a leading zero keeps a high-bit serial positive
    [InlineData("ec", new byte[] { 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF })]
    public void Reads_what_OpenSSL_reads(string keyType, byte[] serial)
    {
        using AsymmetricAlgorithm key = keyType == "rsa" ? RSA.Create(2048) : ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var issuerKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        // 2049 is the last UTCTime year; 2051 is written as GeneralizedTime (RFC 5280 §4.1.2.5).
        var notBefore = new DateTimeOffset(2049, 12, 31, 23, 59, 58, TimeSpan.Zero);
        var notAfter = new DateTimeOffset(2051, 3, 4, 5, 6, 7, TimeSpan.Zero);
        using var certificate = Issue(key, issuerKey, "CN=Fields Test Issuer, O=Gatehouse", serial, notBefore, notAfter);

        var fields = CertificateFields.Read(certificate.RawData);

        Assert.Equal(certificate.SerialNumber, fields.SerialNumber);
        Assert.Equal(certificate.IssuerName.Name, fields.Issuer.Name);
        Assert.Equal(certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: true), fields.IssuerSimpleName);
        Assert.Equal(notBefore, fields.NotBefore);
        Assert.Equal(notAfter, fields.NotAfter);
        Assert.Equal(new DateTimeOffset(certificate.NotAfter.ToUniversalTime()), fields.NotAfter);
        Assert.Equal(key.ExportSubjectPublicKeyInfo(), fields.SubjectPublicKeyInfo.ToArray());
    }

    [Fact]
    public void Simple_name_falls_back_to_the_organizational_unit_then_the_organization()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var withUnit = Issue(key, key, "OU=Unit, O=Org", [1], DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddDays(1));
        using var withOrganization = Issue(key, key, "O=Org, C=DE", [1], DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddDays(1));

        Assert.Equal("Unit", CertificateFields.Read(withUnit.RawData).IssuerSimpleName);
        Assert.Equal("Org", CertificateFields.Read(withOrganization.RawData).IssuerSimpleName);
    }

    [Fact]
    public void Reads_the_certificate_blocks_of_a_PEM_chain_in_order_and_skips_other_blocks()
    {
        using var leafKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var leaf = Issue(leafKey, rootKey, "CN=Chain Root", [0x0A], DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddDays(1));
        using var root = Issue(rootKey, rootKey, "CN=Chain Root", [0x0B], DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddDays(1));
        var pem = leaf.ExportCertificatePem() + "\n" + PemEncoding.WriteString("PRIVATE KEY", [1, 2, 3]) + "\n" + root.ExportCertificatePem() + "\n";

        var chain = CertificateFields.ReadPem(pem);

        Assert.Equal(["0A", "0B"], chain.Select(c => c.SerialNumber));
        Assert.Empty(CertificateFields.ReadPem("no PEM here"));
    }

    [Fact]
    public void Reads_the_subject_alternative_names_as_OpenSSL_does_and_null_without_them()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("a.fields.test");
        names.AddDnsName("*.b.fields.test");
        names.AddIpAddress(System.Net.IPAddress.Parse("192.0.2.7"));
        names.AddIpAddress(System.Net.IPAddress.Parse("2001:db8::1"));
        var request = new CertificateRequest("CN=leaf.test", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(names.Build(critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        using var certificate = request.Create(new X500DistinguishedName("CN=Fields Test Issuer"), X509SignatureGenerator.CreateForECDsa(key), DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddDays(1), [7]);
        using var withoutNames = Issue(key, key, "CN=Fields Test Issuer", [8], DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddDays(1));

        var san = CertificateFields.Read(certificate.RawData).SubjectAlternativeName;

        var expected = certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        Assert.NotNull(san);
        Assert.True(san.Critical);
        Assert.Equal(expected.EnumerateDnsNames(), san.EnumerateDnsNames());
        Assert.Equal(expected.EnumerateIPAddresses(), san.EnumerateIPAddresses());
        Assert.Equal(["a.fields.test", "*.b.fields.test"], san.EnumerateDnsNames());
        Assert.Null(CertificateFields.Read(withoutNames.RawData).SubjectAlternativeName);
    }

    [Fact]
    public void Splits_a_PEM_chain_into_the_DER_of_its_certificate_blocks()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var first = Issue(key, key, "CN=Split", [1], DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddDays(1));
        using var second = Issue(key, key, "CN=Split", [2], DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddDays(1));
        var pem = first.ExportCertificatePem() + "\n" + PemEncoding.WriteString("PRIVATE KEY", [1, 2, 3]) + "\n" + second.ExportCertificatePem();

        var blocks = CertificateFields.SplitPem(pem);

        Assert.Equal([first.RawData, second.RawData], blocks);
        Assert.Empty(CertificateFields.SplitPem(""));
        var broken = "-----BEGIN CERTIFICATE-----\nAAA*\n-----END CERTIFICATE-----\n";
        Assert.Empty(CertificateFields.SplitPem(broken)); // not a PEM block at all: PemEncoding skips it
    }

    [Theory]
    [InlineData(new byte[] { })]
    [InlineData(new byte[] { 0x30, 0x03, 0x02, 0x01, 0x01 })] // a SEQUENCE holding an INTEGER, not a certificate
    [InlineData(new byte[] { 0x30, 0x82, 0xFF, 0xFF })] // a length past the end
    public void Garbage_is_a_cryptographic_exception(byte[] der)
    {
        Assert.Throws<CryptographicException>(() => CertificateFields.Read(der));
    }

    [Fact]
    public void A_certificate_block_that_is_not_a_certificate_is_a_cryptographic_exception()
    {
        Assert.Throws<CryptographicException>(() => CertificateFields.ReadPem(PemEncoding.WriteString("CERTIFICATE", [0x30, 0x00])));
    }

    private static X509Certificate2 Issue(AsymmetricAlgorithm key, ECDsa issuerKey, string issuer, byte[] serial, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        var request = key is RSA rsa
            ? new CertificateRequest("CN=leaf.test", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)
            : new CertificateRequest("CN=leaf.test", (ECDsa)key, HashAlgorithmName.SHA256);
        return request.Create(new X500DistinguishedName(issuer), X509SignatureGenerator.CreateForECDsa(issuerKey), notBefore, notAfter, serial);
    }
}
