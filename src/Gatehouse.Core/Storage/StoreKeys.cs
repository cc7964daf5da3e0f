namespace Gatehouse.Storage;

/// <summary>
/// The one owner of the key layout. Every key Gatehouse stores is built here, so the layout can be read in one place
/// and changed with one migration.
/// </summary>
/// <remarks>
/// <code>
/// /gatehouse/v1/sites/&lt;site-id&gt;                 desired state of a site (JSON)
/// /gatehouse/v1/hosts/&lt;host&gt;                 claim of one host name by one site (value: site id)
/// /gatehouse/v1/certs/&lt;cert-id&gt;                 issued chain + sealed private key + renewal state (JSON)
/// /gatehouse/v1/challenges/http-01/&lt;token&gt;      key authorization for an ACME HTTP-01 challenge
/// /gatehouse/v1/challenges/tls-alpn-01/&lt;host&gt;   TLS-ALPN-01 challenge certificate + sealed key (JSON)
/// /gatehouse/v1/ca/root, /ca/intermediate          local CA certificates + sealed keys (JSON)
/// /gatehouse/v1/locks/&lt;name&gt;                    lease-backed locks (value: holder id)
/// /gatehouse/v1/admin/token                        SHA-256 of the admin bearer token
/// /gatehouse/v1/acme/accounts/&lt;issuer&gt;         ACME account URL + sealed account key (JSON)
/// /gatehouse/v1/keys/ring                          master key versions, their states and provider references (JSON)
/// </code>
/// </remarks>
public static class StoreKeys
{
    /// <summary>The root of every key of this layout version.</summary>
    public const string Root = "/gatehouse/v1/";

    /// <summary>Prefix of site records.</summary>
    public const string SitesPrefix = Root + "sites/";

    /// <summary>Prefix of host claims: a host belongs to at most one site, enforced by conditional writes.</summary>
    public const string HostClaimsPrefix = Root + "hosts/";

    /// <summary>Prefix of certificate records.</summary>
    public const string CertificatesPrefix = Root + "certs/";

    /// <summary>Prefix of HTTP-01 challenge answers.</summary>
    public const string Http01Prefix = Root + "challenges/http-01/";

    /// <summary>Prefix of TLS-ALPN-01 challenge certificates.</summary>
    public const string TlsAlpn01Prefix = Root + "challenges/tls-alpn-01/";

    /// <summary>Prefix of ACME accounts (one per configured ACME issuer).</summary>
    public const string AcmeAccountsPrefix = Root + "acme/accounts/";

    /// <summary>Prefix of locks.</summary>
    public const string LocksPrefix = Root + "locks/";

    /// <summary>The local CA's root certificate and sealed key.</summary>
    public const string LocalCaRoot = Root + "ca/root";

    /// <summary>The local CA's intermediate certificate and sealed key.</summary>
    public const string LocalCaIntermediate = Root + "ca/intermediate";

    /// <summary>The hash of the admin API's bearer token.</summary>
    public const string AdminTokenHash = Root + "admin/token";

    /// <summary>The master key ring: versions, states, provider references.</summary>
    public const string KeyRing = Root + "keys/ring";

    /// <summary>The longest key accepted (etcd's default request limits leave plenty of room).</summary>
    public const int MaxKeyLength = 1024;

    public static string Site(string siteId) => SitesPrefix + Segment(siteId);

    public static string HostClaim(string host) => HostClaimsPrefix + Segment(host);

    public static string Certificate(string certificateId) => CertificatesPrefix + Segment(certificateId);

    public static string Http01Challenge(string token) => Http01Prefix + Segment(token);

    public static string TlsAlpn01Challenge(string host) => TlsAlpn01Prefix + Segment(host);

    public static string AcmeAccount(string issuer) => AcmeAccountsPrefix + Segment(issuer);

    public static string Lock(string name) => LocksPrefix + name;

    /// <summary>The last segment of a key (the id under its prefix).</summary>
    public static string IdOf(string key, string prefix) =>
        key.StartsWith(prefix, StringComparison.Ordinal) ? key[prefix.Length..] : throw new ArgumentException($"'{key}' is not under '{prefix}'.", nameof(key));

    /// <summary>Throws when <paramref name="key"/> is not a well-formed store key.</summary>
    public static void Validate(string key)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        if (key[0] != '/' || key.Length > MaxKeyLength)
        {
            throw new ArgumentException($"A store key starts with '/' and has at most {MaxKeyLength} characters: '{Printable(key)}'.", nameof(key));
        }

        foreach (var c in key)
        {
            if (char.IsControl(c))
            {
                throw new ArgumentException($"A store key has no control characters: '{Printable(key)}'.", nameof(key));
            }
        }
    }

    private static string Segment(string id)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        if (id.Contains('/', StringComparison.Ordinal) || id is "." or "..")
        {
            throw new ArgumentException($"'{Printable(id)}' cannot be one segment of a store key.", nameof(id));
        }

        return id;
    }

    private static string Printable(string s) => s.Length > 80 ? string.Concat(s.AsSpan(0, 80), "…") : s;
}
