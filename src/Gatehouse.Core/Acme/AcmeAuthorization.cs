using System.Text.Json.Serialization;

namespace Gatehouse.Acme;

/// <summary>An authorization (RFC 8555 §7.1.4).</summary>
public sealed record AcmeAuthorization
{
    /// <summary>The authorization URL. Set on every authorization this client returns.</summary>
    [JsonIgnore]
    public Uri Url { get; init; } = null!;

    /// <summary>The identifier; for a wildcard order the name without <c>*.</c> and <see cref="Wildcard"/> true.</summary>
    public required AcmeIdentifier Identifier { get; init; }

    public required AcmeAuthorizationStatus Status { get; init; }

    public DateTimeOffset? Expires { get; init; }

    public IReadOnlyList<AcmeChallenge> Challenges { get; init => field = value ?? []; } = [];

    public bool Wildcard { get; init; }

    /// <summary>The challenge of <paramref name="type"/>, if the server offers one.</summary>
    public AcmeChallenge? FindChallenge(string type) => Challenges.FirstOrDefault(c => c.Type == type);
}

/// <summary>A challenge (RFC 8555 §8; types: §8.3, §8.4, RFC 8737).</summary>
public sealed record AcmeChallenge
{
    public const string Http01 = "http-01";
    public const string Dns01 = "dns-01";
    public const string TlsAlpn01 = "tls-alpn-01";

    /// <summary><c>http-01</c>, <c>dns-01</c>, <c>tls-alpn-01</c> or a type this client does not know.</summary>
    public required string Type { get; init; }

    public required Uri Url { get; init; }

    public required AcmeChallengeStatus Status { get; init; }

    /// <summary>The token of the token-based types (all three above).</summary>
    public string? Token { get; init; }

    public DateTimeOffset? Validated { get; init; }

    /// <summary>Why validation failed.</summary>
    public AcmeProblem? Error { get; init; }
}

[JsonConverter(typeof(JsonStringEnumConverter<AcmeAuthorizationStatus>))]
public enum AcmeAuthorizationStatus
{
    [JsonStringEnumMemberName("pending")]
    Pending,

    [JsonStringEnumMemberName("valid")]
    Valid,

    [JsonStringEnumMemberName("invalid")]
    Invalid,

    [JsonStringEnumMemberName("deactivated")]
    Deactivated,

    [JsonStringEnumMemberName("expired")]
    Expired,

    [JsonStringEnumMemberName("revoked")]
    Revoked,
}

[JsonConverter(typeof(JsonStringEnumConverter<AcmeChallengeStatus>))]
public enum AcmeChallengeStatus
{
    [JsonStringEnumMemberName("pending")]
    Pending,

    [JsonStringEnumMemberName("processing")]
    Processing,

    [JsonStringEnumMemberName("valid")]
    Valid,

    [JsonStringEnumMemberName("invalid")]
    Invalid,
}
