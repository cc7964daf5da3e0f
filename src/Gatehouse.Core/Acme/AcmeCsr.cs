using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Gatehouse.Acme;

/// <summary>The key types of certificates Gatehouse orders.</summary>
public enum AcmeCertificateKeyType
{
    EcdsaP256,
    EcdsaP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

/// <summary>Certificate keys and the PKCS#10 requests (RFC 2986) that finalize an order (RFC 8555 §7.4).</summary>
public static class AcmeCsr
{
    /// <summary>A new private key of <paramref name="type"/>; the caller disposes it.</summary>
    public static AsymmetricAlgorithm CreateKey(AcmeCertificateKeyType type) => type switch
    {
        AcmeCertificateKeyType.EcdsaP256 => ECDsa.Create(ECCurve.NamedCurves.nistP256),
        AcmeCertificateKeyType.EcdsaP384 => ECDsa.Create(ECCurve.NamedCurves.nistP384),
        AcmeCertificateKeyType.Rsa2048 => RSA.Create(2048),
        AcmeCertificateKeyType.Rsa3072 => RSA.Create(3072),
        AcmeCertificateKeyType.Rsa4096 => RSA.Create(4096),
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>
    /// A DER CSR signed by <paramref name="key"/> (ECDSA P-256/P-384 or RSA) for <paramref name="names"/>: every name in
    /// the subjectAltName (IP addresses as iPAddress entries), the first as the subject CN when it fits (64
    /// characters, RFC 5280 ub-common-name); otherwise an empty subject and a critical SAN.
    /// </summary>
    public static byte[] Create(AsymmetricAlgorithm key, IReadOnlyList<string> names)
    {
        if (names.Count == 0)
        {
            throw new ArgumentException("A certificate request needs at least one name.", nameof(names));
        }

        var subject = names[0].Length <= 64 ? new X500DistinguishedName("CN=" + names[0]) : new X500DistinguishedName("");
        var request = key switch
        {
            ECDsa ec => new CertificateRequest(subject, ec, ec.KeySize > 256 ? HashAlgorithmName.SHA384 : HashAlgorithmName.SHA256),
            RSA rsa => new CertificateRequest(subject, rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1),
            _ => throw new ArgumentException($"{key.GetType().Name} keys are not certificate keys; use ECDSA or RSA.", nameof(key)),
        };

        var alternativeNames = new SubjectAlternativeNameBuilder();
        foreach (var name in names)
        {
            AcmeIdentifier.FromName(name).AddTo(alternativeNames);
        }

        request.CertificateExtensions.Add(alternativeNames.Build(critical: subject.RawData.Length <= 2));
        return request.CreateSigningRequest();
    }
}
