using System.Buffers.Text;
using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Gatehouse.Acme;

/// <summary>
/// What a solver publishes to answer one challenge: the key authorization (RFC 8555 §8.1) and what each challenge
/// type makes of it. Immutable; holds no private key (the TLS-ALPN-01 certificate is made on request).
/// </summary>
public sealed record AcmeChallengeAnswer
{
    public required AcmeAuthorization Authorization { get; init; }

    public required AcmeChallenge Challenge { get; init; }

    /// <summary>token "." base64url(JWK thumbprint of the account key).</summary>
    public required string KeyAuthorization { get; init; }

    /// <summary>The identifier being validated (for a wildcard the base name, without <c>*.</c>).</summary>
    public AcmeIdentifier Identifier => Authorization.Identifier;

    public string Token => Challenge.Token ?? "";

    /// <summary>HTTP-01 (RFC 8555 §8.3): the path on port 80 that answers <see cref="KeyAuthorization"/>.</summary>
    public string Http01Path => "/.well-known/acme-challenge/" + Token;

    /// <summary>HTTP-01: the response body, exactly the key authorization.</summary>
    public string Http01Body => KeyAuthorization;

    /// <summary>DNS-01 (RFC 8555 §8.4): the TXT record's owner name, <c>_acme-challenge.NAME</c> (no trailing dot).</summary>
    public string Dns01RecordName => AcmeKeyAuthorization.Dns01RecordName(Identifier.Value);

    /// <summary>DNS-01: the TXT record's value, base64url(SHA-256(key authorization)).</summary>
    public string Dns01TxtValue => AcmeKeyAuthorization.Dns01TxtValue(KeyAuthorization);

    /// <summary>TLS-ALPN-01 (RFC 8737): a new self-signed challenge certificate with its private key; the caller disposes it.</summary>
    public X509Certificate2 CreateTlsAlpn01Certificate() => AcmeKeyAuthorization.CreateTlsAlpn01Certificate(Identifier, KeyAuthorization);
}

/// <summary>Key authorizations (RFC 8555 §8.1) and what the challenge types derive from them.</summary>
public static class AcmeKeyAuthorization
{
    /// <summary>The ALPN protocol of TLS-ALPN-01 handshakes (RFC 8737 §6.2).</summary>
    public const string TlsAlpn01Protocol = "acme-tls/1";

    /// <summary>id-pe-acmeIdentifier (RFC 8737 §6.1).</summary>
    public const string AcmeIdentifierOid = "1.3.6.1.5.5.7.1.31";

    /// <summary>token "." thumbprint.</summary>
    public static string Compute(string token, AcmeAccountKey accountKey) => token + "." + accountKey.Thumbprint;

    /// <summary>base64url(SHA-256(key authorization)), the TXT value of DNS-01 (RFC 8555 §8.4).</summary>
    public static string Dns01TxtValue(string keyAuthorization) =>
        Base64Url.EncodeToString(SHA256.HashData(Encoding.UTF8.GetBytes(keyAuthorization)));

    /// <summary><c>_acme-challenge.</c> + the name, a wildcard's <c>*.</c> left out (RFC 8555 §8.4).</summary>
    public static string Dns01RecordName(string name) =>
        "_acme-challenge." + (name.StartsWith("*.", StringComparison.Ordinal) ? name[2..] : name);

    /// <summary>
    /// The TLS-ALPN-01 challenge certificate (RFC 8737 §3): self-signed, one subjectAltName (the DNS name, or for an
    /// <c>ip</c> identifier the address, RFC 8738 §6), and the critical acmeIdentifier extension whose value is
    /// the DER OCTET STRING of SHA-256(key authorization). A fresh ECDSA P-256 key; returned with it.
    /// </summary>
    public static X509Certificate2 CreateTlsAlpn01Certificate(AcmeIdentifier identifier, string keyAuthorization)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName(""), key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        identifier.AddTo(san);

        // An empty subject makes the SAN extension critical (RFC 5280 §4.2.1.6).
        request.CertificateExtensions.Add(san.Build(critical: true));
        var writer = new AsnWriter(AsnEncodingRules.DER);
        writer.WriteOctetString(SHA256.HashData(Encoding.UTF8.GetBytes(keyAuthorization)));
        request.CertificateExtensions.Add(new X509Extension(AcmeIdentifierOid, writer.Encode(), critical: true));

        var now = DateTimeOffset.UtcNow;
        return request.CreateSelfSigned(now.AddDays(-1), now.AddDays(7));
    }
}
