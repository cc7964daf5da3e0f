using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Gatehouse.Acme;

/// <summary>A JWS in the flattened JSON serialization (RFC 7515 §7.2.2), the only one ACME accepts (RFC 8555 §6.2).</summary>
internal sealed record FlattenedJws(string Protected, string Payload, string Signature);

/// <summary>A JWS protected header with the members ACME uses (RFC 8555 §6.2): exactly one of <c>jwk</c> and <c>kid</c>.</summary>
internal sealed record JwsHeader
{
    public required string Alg { get; init; }

    public JsonWebKey? Jwk { get; init; }

    public string? Kid { get; init; }

    public string? Nonce { get; init; }

    public required string Url { get; init; }
}

/// <summary>Builds the JWS bodies of ACME requests.</summary>
internal static class Jws
{
    /// <summary>
    /// Signs <paramref name="payload"/> for <paramref name="url"/>. With <paramref name="keyId"/> (the account URL) the
    /// header names the account (<c>kid</c>); without, it carries the public key (<c>jwk</c>: newAccount, revocation
    /// by certificate key, the inner JWS of a key change). A null payload is POST-as-GET (RFC 8555 §6.3): the empty
    /// string, not <c>{}</c>.
    /// </summary>
    public static FlattenedJws Sign(AcmeAccountKey key, Uri url, string? nonce, Uri? keyId, byte[]? payload)
    {
        var header = new JwsHeader
        {
            Alg = key.AlgorithmName,
            Jwk = keyId is null ? key.Jwk : null,
            Kid = keyId?.AbsoluteUri,
            Nonce = nonce,
            Url = url.AbsoluteUri,
        };
        var encodedHeader = Base64Url.EncodeToString(JsonSerializer.SerializeToUtf8Bytes(header, AcmeJson.Default.JwsHeader));
        var encodedPayload = payload is null ? "" : Base64Url.EncodeToString(payload);
        return new FlattenedJws(encodedHeader, encodedPayload, Base64Url.EncodeToString(key.Sign(SigningInput(encodedHeader, encodedPayload))));
    }

    /// <summary>
    /// The <c>externalAccountBinding</c> of a newAccount request (RFC 8555 §7.3.4): an HS256 JWS over the account's
    /// public JWK, under the key id and MAC key the CA gave out of band, for the newAccount URL.
    /// </summary>
    public static FlattenedJws ExternalAccountBinding(AcmeExternalAccountBinding binding, AcmeAccountKey accountKey, Uri newAccountUrl)
    {
        var header = new JwsHeader { Alg = "HS256", Kid = binding.KeyId, Url = newAccountUrl.AbsoluteUri };
        var encodedHeader = Base64Url.EncodeToString(JsonSerializer.SerializeToUtf8Bytes(header, AcmeJson.Default.JwsHeader));
        var encodedPayload = Base64Url.EncodeToString(accountKey.JwkJson);
        var signature = binding.Mac(SigningInput(encodedHeader, encodedPayload));
        return new FlattenedJws(encodedHeader, encodedPayload, Base64Url.EncodeToString(signature));
    }

    /// <summary>The JWS Signing Input: ASCII(BASE64URL(header) '.' BASE64URL(payload)) (RFC 7515 §5.1).</summary>
    public static byte[] SigningInput(string encodedHeader, string encodedPayload) =>
        Encoding.ASCII.GetBytes(encodedHeader + "." + encodedPayload);
}

/// <summary>
/// External account binding credentials (RFC 8555 §7.3.4): the key id and the HMAC key a CA gives out of band.
/// The key is copied in, kept private, and zeroed on dispose.
/// </summary>
public sealed class AcmeExternalAccountBinding : IDisposable
{
    private readonly byte[] _macKey;

    public AcmeExternalAccountBinding(string keyId, ReadOnlySpan<byte> macKey)
    {
        ArgumentException.ThrowIfNullOrEmpty(keyId);
        if (macKey.IsEmpty)
        {
            throw new ArgumentException("The EAB MAC key is empty.", nameof(macKey));
        }

        KeyId = keyId;
        _macKey = macKey.ToArray();
    }

    public string KeyId { get; }

    /// <summary>Credentials as CAs print them: the MAC key base64url-encoded (padding and standard base64 accepted).</summary>
    /// <exception cref="FormatException">The key is not base64url.</exception>
    public static AcmeExternalAccountBinding FromBase64Url(string keyId, string macKey)
    {
        var normalized = macKey.Trim().TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var bytes = Base64Url.DecodeFromChars(normalized);
        try
        {
            return new AcmeExternalAccountBinding(keyId, bytes);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    public void Dispose() => CryptographicOperations.ZeroMemory(_macKey);

    /// <summary>The key id only: the MAC key never appears in text.</summary>
    public override string ToString() => $"EAB key id {KeyId}";

    internal byte[] Mac(ReadOnlySpan<byte> data) => HMACSHA256.HashData(_macKey, data);
}
