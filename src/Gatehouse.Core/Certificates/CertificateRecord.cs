using System.Text.Json.Serialization;

namespace Gatehouse.Certificates;

/// <summary>
/// What the store holds for one certificate: the issued chain and its sealed private key (what the edge serves),
/// and the manager's issuance state (what the manager and operators read).
/// </summary>
public sealed record CertificateRecord
{
    /// <summary>The certificate's id: the site id, or an internal id starting with '_'.</summary>
    public required string Id { get; init; }

    /// <summary>The names the current chain covers (or that the pending issuance asks for).</summary>
    public required IReadOnlyList<string> Names { get; init; }

    /// <summary>The issuer that issued the current chain, or that is being tried.</summary>
    public string? Issuer { get; init; }

    /// <summary>PEM chain, leaf first, without the root; null until the first issuance succeeds.</summary>
    public string? ChainPem { get; init; }

    /// <summary>The leaf's PKCS#8 private key, sealed by Keys for this record's store key.</summary>
    public byte[]? SealedKey { get; init; }

    /// <summary>The key type of the current chain's key (null: ec256).</summary>
    public string? KeyType { get; init; }

    /// <summary>The latest attempts, newest first (at most <see cref="MaxHistory"/>): when, which issuer, and what
    /// came of it (the serial issued, or the issuer's words).</summary>
    public IReadOnlyList<CertificateAttempt> History { get; init; } = [];

    /// <summary>How many attempts <see cref="History"/> keeps.</summary>
    public const int MaxHistory = 10;

    /// <summary>The ACME profile the current chain was ordered with.</summary>
    public string? Profile { get; init; }

    /// <summary>The leaf's serial number (hex).</summary>
    public string? Serial { get; init; }

    public DateTimeOffset? NotBefore { get; init; }

    public DateTimeOffset? NotAfter { get; init; }

    /// <summary>When renewal is due (one third of the lifetime left, unless a policy says otherwise).</summary>
    public DateTimeOffset? RenewAfter { get; init; }

    /// <summary>When to ask the issuer for renewal advice again (RFC 9773); null when it gives none.</summary>
    public DateTimeOffset? RenewalInfoCheckAt { get; init; }

    /// <summary>The CA's suggested renewal window, when it gave one.</summary>
    public DateTimeOffset? RenewalWindowStart { get; init; }

    public DateTimeOffset? RenewalWindowEnd { get; init; }

    public CertificateStatus Status { get; init; } = CertificateStatus.Pending;

    /// <summary>The last failure, for people (the issuer's own words, never key material).</summary>
    public string? LastError { get; init; }

    /// <summary>The names the last failed attempt asked for (they can differ from <see cref="Names"/>, which follow
    /// the chain that is still served).</summary>
    public IReadOnlyList<string>? AttemptedNames { get; init; }

    /// <summary>Failures in a row since the last success.</summary>
    public int ConsecutiveFailures { get; init; }

    /// <summary>When the manager tries again after a failure.</summary>
    public DateTimeOffset? RetryAfter { get; init; }

    public DateTimeOffset? LastAttempt { get; init; }

    /// <summary>Whether this is one of Gatehouse's own certificates (id starting with '_', never a host name), which
    /// the edge does not serve by SNI and the API does not list.</summary>
    [JsonIgnore]
    public bool IsInternal => IsInternalId(Id);

    /// <summary>Whether <paramref name="id"/> names an internal certificate (site ids are host names, never starting with '_').</summary>
    public static bool IsInternalId(string id) => id.StartsWith('_');

    /// <summary>Whether a servable chain and key exist.</summary>
    [JsonIgnore]
    public bool HasChain => ChainPem is not null && SealedKey is not null;
}

/// <summary>One issuance attempt with one issuer.</summary>
/// <param name="At">When it was made.</param>
/// <param name="Issuer">The issuer asked.</param>
/// <param name="Succeeded">Whether a certificate came of it.</param>
/// <param name="Detail">The serial issued, or the issuer's problem detail.</param>
public sealed record CertificateAttempt(DateTimeOffset At, string Issuer, bool Succeeded, string Detail);

/// <summary>Where a certificate stands.</summary>
public enum CertificateStatus
{
    /// <summary>Not issued yet.</summary>
    Pending,

    /// <summary>Issued and within its validity.</summary>
    Valid,

    /// <summary>The last attempt failed; a retry is scheduled (an earlier chain may still be served).</summary>
    Failing,
}
