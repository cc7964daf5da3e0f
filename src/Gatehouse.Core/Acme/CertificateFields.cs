using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Gatehouse.Acme;

/// <summary>
/// The few fields of an X.509 certificate (RFC 5280 §4.1) that issuance needs — serial, issuer, validity, public key —
/// read in managed code from its DER. Loading an <see cref="X509Certificate2"/> goes through OpenSSL, whose 3.0
/// decoder costs a quarter of a millisecond per certificate; issuance reads every chain it receives, and only the
/// edge needs a loaded certificate (once, when it prepares the chain to serve it).
/// </summary>
/// <param name="SerialNumber">Hexadecimal, upper case, as <see cref="X509Certificate.GetSerialNumberString"/> gives it.</param>
/// <param name="Issuer">The issuer's distinguished name.</param>
/// <param name="NotBefore">The start of validity.</param>
/// <param name="NotAfter">The end of validity.</param>
/// <param name="SubjectPublicKeyInfo">The DER of the SubjectPublicKeyInfo, as
/// <see cref="AsymmetricAlgorithm.ExportSubjectPublicKeyInfo"/> writes it for the matching key.</param>
/// <param name="SubjectAlternativeName">The subjectAltName extension (RFC 5280 §4.2.1.6), when the certificate has one:
/// a standalone object, so reading it leaves no extension cache on a loaded certificate.</param>
internal sealed record CertificateFields(string SerialNumber, X500DistinguishedName Issuer, DateTimeOffset NotBefore, DateTimeOffset NotAfter, ReadOnlyMemory<byte> SubjectPublicKeyInfo, X509SubjectAlternativeNameExtension? SubjectAlternativeName = null)
{
    /// <summary>The issuer's common name; its organizational unit, organization or whole name when it has none (the
    /// order <see cref="X509Certificate2.GetNameInfo"/> uses for a simple name).</summary>
    public string IssuerSimpleName
    {
        get
        {
            string? unit = null, organization = null;
            foreach (var rdn in Issuer.EnumerateRelativeDistinguishedNames())
            {
                if (rdn.HasMultipleElements)
                {
                    continue;
                }

                switch (rdn.GetSingleElementType().Value)
                {
                    case "2.5.4.3":
                        return rdn.GetSingleElementValue() ?? "";
                    case "2.5.4.11":
                        unit ??= rdn.GetSingleElementValue();
                        break;
                    case "2.5.4.10":
                        organization ??= rdn.GetSingleElementValue();
                        break;
                }
            }

            return unit ?? organization ?? Issuer.Name;
        }
    }

    private static readonly Asn1Tag Version = new(TagClass.ContextSpecific, 0, isConstructed: true);
    private static readonly Asn1Tag Extensions = new(TagClass.ContextSpecific, 3, isConstructed: true);
    private const string SubjectAlternativeNameOid = "2.5.29.17";

    /// <summary>Reads one DER certificate.</summary>
    /// <exception cref="CryptographicException">It is not a certificate.</exception>
    public static CertificateFields Read(ReadOnlyMemory<byte> der)
    {
        try
        {
            // BER rules accept the DER every CA writes and the rare non-minimal encoding OpenSSL accepts as well.
            var outer = new AsnReader(der, AsnEncodingRules.BER);
            var certificate = outer.ReadSequence();
            outer.ThrowIfNotEmpty();
            var tbs = certificate.ReadSequence();
            if (tbs.PeekTag().HasSameClassAndValue(Version))
            {
                tbs.ReadEncodedValue();
            }

            var serial = Convert.ToHexString(tbs.ReadIntegerBytes().Span);
            tbs.ReadSequence(); // signature algorithm
            var issuer = new X500DistinguishedName(tbs.ReadEncodedValue().Span);
            var validity = tbs.ReadSequence();
            var notBefore = ReadTime(validity);
            var notAfter = ReadTime(validity);
            validity.ThrowIfNotEmpty();
            tbs.ReadSequence(); // subject
            var spki = tbs.ReadEncodedValue();
            return new CertificateFields(serial, issuer, notBefore, notAfter, spki, ReadSubjectAlternativeName(tbs));
        }
        catch (AsnContentException ex)
        {
            throw new CryptographicException($"not an X.509 certificate: {ex.Message}", ex);
        }
    }

    /// <summary>Reads every <c>CERTIFICATE</c> block of a PEM text, in order; other blocks are skipped.</summary>
    /// <exception cref="CryptographicException">A certificate block does not hold a certificate.</exception>
    public static IReadOnlyList<CertificateFields> ReadPem(string pem) => [.. SplitPem(pem).Select(der => Read(der))];

    /// <summary>The DER of every <c>CERTIFICATE</c> block of a PEM text, in order, not parsed; other blocks are skipped
    /// (as <see cref="X509Certificate2Collection.ImportFromPem(ReadOnlySpan{char})"/> does).</summary>
    /// <exception cref="CryptographicException">A certificate block is not base64.</exception>
    public static List<byte[]> SplitPem(string pem)
    {
        var certificates = new List<byte[]>(2);
        var rest = pem.AsMemory();
        while (PemEncoding.TryFind(rest.Span, out var fields))
        {
            var span = rest.Span;
            if (span[fields.Label].SequenceEqual("CERTIFICATE"))
            {
                var der = new byte[fields.DecodedDataLength];
                if (!Convert.TryFromBase64Chars(span[fields.Base64Data], der, out var written) || written != der.Length)
                {
                    throw new CryptographicException("a CERTIFICATE block is not base64");
                }

                certificates.Add(der);
            }

            rest = rest[fields.Location.End..];
        }

        return certificates;
    }

    /// <summary>The subjectAltName among the TBSCertificate's remaining fields (after the public key: the issuer and
    /// subject unique IDs, then the extensions); null when there is none.</summary>
    private static X509SubjectAlternativeNameExtension? ReadSubjectAlternativeName(AsnReader tbs)
    {
        while (tbs.HasData)
        {
            if (!tbs.PeekTag().HasSameClassAndValue(Extensions))
            {
                tbs.ReadEncodedValue(); // issuerUniqueID, subjectUniqueID
                continue;
            }

            var extensions = tbs.ReadSequence(Extensions).ReadSequence();
            while (extensions.HasData)
            {
                var extension = extensions.ReadSequence();
                var oid = extension.ReadObjectIdentifier();
                var critical = extension.PeekTag().HasSameClassAndValue(Asn1Tag.Boolean) && extension.ReadBoolean();
                var value = extension.ReadOctetString();
                if (oid == SubjectAlternativeNameOid)
                {
                    return new X509SubjectAlternativeNameExtension(value, critical);
                }
            }
        }

        return null;
    }

    private static DateTimeOffset ReadTime(AsnReader reader) =>
        reader.PeekTag().HasSameClassAndValue(Asn1Tag.UtcTime) ? reader.ReadUtcTime() : reader.ReadGeneralizedTime();
}
