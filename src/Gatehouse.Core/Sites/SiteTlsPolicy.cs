using System.Globalization;
using Gatehouse.Certificates;

namespace Gatehouse.Sites;

/// <summary>Whether the edge asks a site's clients for a certificate (stored by name).</summary>
public enum ClientAuthMode
{
    /// <summary>No certificate is asked for (the default; a site without <see cref="ClientAuthPolicy"/>).</summary>
    None,

    /// <summary>A certificate is asked for; the handshake succeeds without one, a present but invalid one ends it.
    /// Paths in <see cref="ClientAuthPolicy.RequiredPaths"/> answer 403 to requests without one.</summary>
    Optional,

    /// <summary>The handshake only succeeds with a valid certificate.</summary>
    Required,
}

/// <summary>
/// Mutual TLS toward a site's clients: which certificates the edge accepts. A certificate is valid when it chains to
/// one of <see cref="CaPem"/>'s certificates (only those; never the system roots), is within its validity, allows
/// client authentication (no EKU, or one with clientAuth) and, when the allow-lists are not both empty, its subject
/// is in <see cref="AllowedSubjects"/> or one of its SANs is in <see cref="AllowedSans"/>.
/// </summary>
public sealed record ClientAuthPolicy
{
    /// <summary><see cref="ClientAuthMode.Optional"/> or <see cref="ClientAuthMode.Required"/>; a site with mode none
    /// has no policy at all.</summary>
    public required ClientAuthMode Mode { get; init; }

    /// <summary>The client CA bundle: one or more PEM certificates (no key), as validated.</summary>
    public required string CaPem { get; init; }

    /// <summary>Subject DNs accepted, in the form .NET and RFC 4514 print (<c>CN=client1, O=Example</c>), normalized.</summary>
    public IReadOnlyList<string> AllowedSubjects { get; init; } = [];

    /// <summary>SANs accepted, written <c>dns:NAME</c>, <c>email:ADDRESS</c> or <c>uri:URI</c>, normalized (prefix and
    /// DNS names lower case).</summary>
    public IReadOnlyList<string> AllowedSans { get; init; } = [];

    /// <summary>Optional mode: path prefixes (each starting with '/') whose requests need a certificate (403 without
    /// one). Empty: no path needs one; the backend sees the identity headers when a certificate was sent.</summary>
    public IReadOnlyList<string> RequiredPaths { get; init; } = [];

    /// <summary>Value equality over the lists' contents.</summary>
    public bool SameAs(ClientAuthPolicy? other) =>
        other is not null && Mode == other.Mode && CaPem == other.CaPem && AllowedSubjects.SequenceEqual(other.AllowedSubjects)
        && AllowedSans.SequenceEqual(other.AllowedSans) && RequiredPaths.SequenceEqual(other.RequiredPaths);

    /// <summary>Both optional policies are absent or both are the same.</summary>
    public static bool Same(ClientAuthPolicy? a, ClientAuthPolicy? b) => a is null ? b is null : a.SameAs(b);
}

/// <summary>
/// HTTP Strict Transport Security (RFC 6797) for a site's HTTPS responses. A site without one gets
/// <see cref="DefaultFor"/>: on (one year) when its certificate comes from an ACME issuer, off when it comes from the
/// local CA (usually an internal name, whose clients may not trust that CA forever).
/// </summary>
public sealed record HstsPolicy
{
    /// <summary>The max-age of the ACME default and of <c>hsts: on</c>: one year.</summary>
    public static readonly TimeSpan DefaultMaxAge = TimeSpan.FromDays(365);

    /// <summary>The shortest max-age the HSTS preload list accepts (one year, 31536000 s).</summary>
    public static readonly TimeSpan PreloadMinimum = TimeSpan.FromSeconds(31536000);

    /// <summary>The policy of <c>hsts: off</c>.</summary>
    public static readonly HstsPolicy Off = new() { Enabled = false };

    /// <summary>The default of ACME sites.</summary>
    public static readonly HstsPolicy AcmeDefault = new() { Enabled = true, MaxAgeSeconds = (long)DefaultMaxAge.TotalSeconds };

    /// <summary>Whether the header is sent at all.</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>max-age in seconds (0 tells browsers to forget the site's HSTS).</summary>
    public long MaxAgeSeconds { get; init; }

    /// <summary>Adds <c>includeSubDomains</c>.</summary>
    public bool IncludeSubdomains { get; init; }

    /// <summary>Adds <c>preload</c> (needs includeSubdomains and a max-age of at least a year).</summary>
    public bool Preload { get; init; }

    /// <summary>The header value, e.g. <c>max-age=31536000; includeSubDomains</c>; null when off. Derived, not stored.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string? HeaderValue => !Enabled ? null
        : "max-age=" + MaxAgeSeconds.ToString(CultureInfo.InvariantCulture) + (IncludeSubdomains ? "; includeSubDomains" : "") + (Preload ? "; preload" : "");

    /// <summary>The policy that applies to <paramref name="site"/>: its own, else the default for its issuers.</summary>
    public static HstsPolicy For(SiteDefinition site) => site.Hsts ?? DefaultFor(site.Issuers);

    /// <summary>On when any issuer of the site is an ACME issuer (every issuer but the built-in local CA is one).</summary>
    public static HstsPolicy DefaultFor(IReadOnlyList<string> issuers)
    {
        foreach (var issuer in issuers)
        {
            if (!string.Equals(issuer, LocalCertificateAuthority.IssuerName, StringComparison.Ordinal))
            {
                return AcmeDefault;
            }
        }

        return Off;
    }
}
