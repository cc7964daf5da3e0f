using System.Buffers.Text;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Serialization;

namespace Gatehouse.Acme;

/// <summary>A CA's renewal suggestion for one certificate (RFC 9773 §4.2).</summary>
public sealed record AcmeRenewalInfo
{
    public required AcmeRenewalWindow SuggestedWindow { get; init; }

    /// <summary>A page that explains the window (e.g. why a certificate is to be replaced early).</summary>
    [JsonPropertyName("explanationURL")]
    public Uri? ExplanationUrl { get; init; }

    /// <summary>When to ask again (the response's <c>Retry-After</c>), when the CA said. RFC 9773 §4.3: clients
    /// poll again after it, and without it choose their own interval (a few hours).</summary>
    [JsonIgnore]
    public DateTimeOffset? RetryAfter { get; init; }

    /// <summary>
    /// A time chosen uniformly at random inside the window (RFC 9773 §4.2), so that the CA's clients spread out. A
    /// time already past means "renew now".
    /// </summary>
    public DateTimeOffset PickRenewalTime(Random? random = null)
    {
        var span = SuggestedWindow.End - SuggestedWindow.Start;
        if (span <= TimeSpan.Zero)
        {
            return SuggestedWindow.Start;
        }

        var offset = (long)((random ?? Random.Shared).NextDouble() * span.Ticks);
        return SuggestedWindow.Start + TimeSpan.FromTicks(offset);
    }
}

/// <summary>The window in which the CA suggests renewing (RFC 9773 §4.2).</summary>
public sealed record AcmeRenewalWindow(DateTimeOffset Start, DateTimeOffset End);

/// <summary>
/// The ARI certificate identifier (RFC 9773 §4.1): base64url(authority key identifier's keyIdentifier) "."
/// base64url(the serial number's DER content octets, leading zero included). It names a certificate in renewalInfo
/// requests and in the <c>replaces</c> of the order that renews it.
/// </summary>
public static class AcmeCertificateId
{
    /// <summary>The identifier of <paramref name="certificate"/>.</summary>
    /// <exception cref="ArgumentException">The certificate has no authority key identifier with a keyIdentifier.</exception>
    public static string Compute(X509Certificate2 certificate)
    {
        var aki = certificate.Extensions.OfType<X509AuthorityKeyIdentifierExtension>().FirstOrDefault()?.KeyIdentifier
            ?? throw new ArgumentException("The certificate has no authority key identifier, so it has no ARI identifier.", nameof(certificate));
        return Compute(aki.Span, certificate.SerialNumberBytes.Span);
    }

    /// <summary>The identifier from its two parts: the keyIdentifier bytes and the serial's DER content octets.</summary>
    public static string Compute(ReadOnlySpan<byte> authorityKeyIdentifier, ReadOnlySpan<byte> serialNumberDer) =>
        Base64Url.EncodeToString(authorityKeyIdentifier) + "." + Base64Url.EncodeToString(serialNumberDer);
}
