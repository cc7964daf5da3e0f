using System.Buffers.Text;
using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Text.Json;

namespace Gatehouse.Acme;

/// <summary>The JWS algorithms of account keys (RFC 7518 §3.1). ES256 is the default and what every CA accepts.</summary>
public enum AcmeKeyAlgorithm
{
    /// <summary>ECDSA P-256 with SHA-256.</summary>
    Es256,

    /// <summary>ECDSA P-384 with SHA-384.</summary>
    Es384,

    /// <summary>ECDSA P-521 with SHA-512 (certificate keys for revocation; few CAs take it for accounts).</summary>
    Es512,

    /// <summary>RSASSA-PKCS1-v1_5 with SHA-256.</summary>
    Rs256,
}

/// <summary>
/// A key that signs ACME requests: an account key, or (for revocation by certificate key) a certificate's key. Knows
/// its JWS algorithm, its public JWK (RFC 7517) and the JWK thumbprint (RFC 7638) that key authorizations use.
/// </summary>
public sealed class AcmeAccountKey : IDisposable
{
    private const string EcOid = "1.2.840.10045.2.1";
    private const string RsaOid = "1.2.840.113549.1.1.1";

    private readonly AsymmetricAlgorithm _key;
    private readonly bool _ownsKey;

    private AcmeAccountKey(AsymmetricAlgorithm key, bool ownsKey)
    {
        _key = key;
        _ownsKey = ownsKey;
        (Algorithm, Jwk) = key switch
        {
            ECDsa ec => EcJwk(ec),
            RSA rsa => RsaJwk(rsa),
            _ => throw new ArgumentException($"{key.GetType().Name} keys cannot sign ACME requests; use ECDSA or RSA.", nameof(key)),
        };
        JwkJson = JsonSerializer.SerializeToUtf8Bytes(Jwk, AcmeJson.Default.JsonWebKey);
        Thumbprint = Base64Url.EncodeToString(SHA256.HashData(JwkJson));
    }

    public AcmeKeyAlgorithm Algorithm { get; }

    /// <summary>The algorithm's JWS name (<c>ES256</c>, <c>ES384</c>, <c>ES512</c>, <c>RS256</c>).</summary>
    public string AlgorithmName => Algorithm switch
    {
        AcmeKeyAlgorithm.Es256 => "ES256",
        AcmeKeyAlgorithm.Es384 => "ES384",
        AcmeKeyAlgorithm.Es512 => "ES512",
        _ => "RS256",
    };

    /// <summary>The base64url SHA-256 JWK thumbprint (RFC 7638 §3) of the public key.</summary>
    public string Thumbprint { get; }

    /// <summary>The public key as a JWK with only the required members.</summary>
    internal JsonWebKey Jwk { get; }

    /// <summary>The JWK in its RFC 7638 canonical form (members in lexicographic order, no whitespace).</summary>
    internal byte[] JwkJson { get; }

    /// <summary>A new key: ECDSA P-256 by default; RSA keys have 2048 bits unless <paramref name="rsaKeySize"/> says.</summary>
    public static AcmeAccountKey Create(AcmeKeyAlgorithm algorithm = AcmeKeyAlgorithm.Es256, int rsaKeySize = 2048) => algorithm switch
    {
        AcmeKeyAlgorithm.Es256 => new(ECDsa.Create(ECCurve.NamedCurves.nistP256), true),
        AcmeKeyAlgorithm.Es384 => new(ECDsa.Create(ECCurve.NamedCurves.nistP384), true),
        AcmeKeyAlgorithm.Es512 => new(ECDsa.Create(ECCurve.NamedCurves.nistP521), true),
        AcmeKeyAlgorithm.Rs256 => new(RSA.Create(rsaKeySize), true),
        _ => throw new ArgumentOutOfRangeException(nameof(algorithm)),
    };

    /// <summary>Loads a key from an unencrypted PKCS#8 PrivateKeyInfo (ECDSA P-256/P-384/P-521 or RSA).</summary>
    /// <exception cref="CryptographicException">Not such a key.</exception>
    public static AcmeAccountKey ImportPkcs8(ReadOnlySpan<byte> pkcs8)
    {
        AsymmetricAlgorithm key = ReadAlgorithmOid(pkcs8) switch
        {
            EcOid => ECDsa.Create(),
            RsaOid => RSA.Create(),
            _ => throw new CryptographicException("The PKCS#8 key is neither an ECDSA nor an RSA key."),
        };
        try
        {
            key.ImportPkcs8PrivateKey(pkcs8, out _);
            return new AcmeAccountKey(key, true);
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Uses a key the caller keeps owning (it is not disposed with this object), e.g. a certificate's key to revoke
    /// that certificate.
    /// </summary>
    public static AcmeAccountKey FromKey(AsymmetricAlgorithm key) => new(key, false);

    /// <summary>The private key as unencrypted PKCS#8, to be sealed before it is stored. The caller zeroes it.</summary>
    public byte[] ExportPkcs8PrivateKey() => _key.ExportPkcs8PrivateKey();

    public void Dispose()
    {
        if (_ownsKey)
        {
            _key.Dispose();
        }
    }

    /// <summary>The JWS signature over <paramref name="signingInput"/>; ECDSA signatures in the IEEE P1363 form
    /// (r ‖ s) that RFC 7518 §3.4 requires.</summary>
    internal byte[] Sign(ReadOnlySpan<byte> signingInput) => _key switch
    {
        ECDsa ec => ec.SignData(signingInput, EcHash(Algorithm), DSASignatureFormat.IeeeP1363FixedFieldConcatenation),
        RSA rsa => rsa.SignData(signingInput, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1),
        _ => throw new InvalidOperationException(),
    };

    private static HashAlgorithmName EcHash(AcmeKeyAlgorithm algorithm) => algorithm switch
    {
        AcmeKeyAlgorithm.Es384 => HashAlgorithmName.SHA384,
        AcmeKeyAlgorithm.Es512 => HashAlgorithmName.SHA512,
        _ => HashAlgorithmName.SHA256,
    };

    private static (AcmeKeyAlgorithm, JsonWebKey) EcJwk(ECDsa key)
    {
        var parameters = key.ExportParameters(false);
        var (algorithm, curve) = parameters.Curve.Oid.Value switch
        {
            "1.2.840.10045.3.1.7" => (AcmeKeyAlgorithm.Es256, "P-256"),
            "1.3.132.0.34" => (AcmeKeyAlgorithm.Es384, "P-384"),
            "1.3.132.0.35" => (AcmeKeyAlgorithm.Es512, "P-521"),
            _ => throw new ArgumentException("Only ECDSA keys on P-256, P-384 or P-521 can sign ACME requests.", nameof(key)),
        };

        // The coordinates come fixed-length (the field size), as RFC 7518 §6.2.1.2 wants them.
        return (algorithm, new JsonWebKey
        {
            Crv = curve,
            Kty = "EC",
            X = Base64Url.EncodeToString(parameters.Q.X),
            Y = Base64Url.EncodeToString(parameters.Q.Y),
        });
    }

    private static (AcmeKeyAlgorithm, JsonWebKey) RsaJwk(RSA key)
    {
        var parameters = key.ExportParameters(false);
        return (AcmeKeyAlgorithm.Rs256, new JsonWebKey
        {
            E = Base64Url.EncodeToString(TrimLeadingZeros(parameters.Exponent)),
            Kty = "RSA",
            N = Base64Url.EncodeToString(TrimLeadingZeros(parameters.Modulus)),
        });
    }

    // RFC 7518 §6.3.1: "the minimum number of octets" for n and e.
    private static ReadOnlySpan<byte> TrimLeadingZeros(ReadOnlySpan<byte> value)
    {
        var start = 0;
        while (start < value.Length - 1 && value[start] == 0)
        {
            start++;
        }

        return value[start..];
    }

    // PrivateKeyInfo ::= SEQUENCE { version INTEGER, privateKeyAlgorithm AlgorithmIdentifier, privateKey OCTET STRING }
    private static string? ReadAlgorithmOid(ReadOnlySpan<byte> pkcs8)
    {
        // Read in place: the span holds the private key, and a copy would be one more place to zero.
        try
        {
            AsnDecoder.ReadSequence(pkcs8, AsnEncodingRules.DER, out var offset, out var length, out _);
            var info = pkcs8.Slice(offset, length);
            AsnDecoder.ReadEncodedValue(info, AsnEncodingRules.DER, out _, out _, out var versionLength);
            AsnDecoder.ReadSequence(info[versionLength..], AsnEncodingRules.DER, out offset, out length, out _);
            return AsnDecoder.ReadObjectIdentifier(info[versionLength..].Slice(offset, length), AsnEncodingRules.DER, out _);
        }
        catch (AsnContentException)
        {
            return null;
        }
    }
}

/// <summary>A public JWK with only the members RFC 7638 §3.2 keeps, declared in lexicographic order so that the
/// serialized form is the canonical one.</summary>
internal sealed record JsonWebKey
{
    public string? Crv { get; init; }

    public string? E { get; init; }

    public required string Kty { get; init; }

    public string? N { get; init; }

    public string? X { get; init; }

    public string? Y { get; init; }
}
