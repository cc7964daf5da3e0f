using System.Text.Json.Serialization;

namespace Gatehouse.Acme;

/// <summary>An ACME account (RFC 8555 §7.1.2).</summary>
public sealed record AcmeAccount
{
    /// <summary>The account URL (the <c>kid</c> of later requests). Set on every account this client returns.</summary>
    [JsonIgnore]
    public Uri Url { get; init; } = null!;

    public AcmeAccountStatus Status { get; init; }

    /// <summary>Contact URLs (<c>mailto:</c>…).</summary>
    public IReadOnlyList<string> Contact { get; init => field = value ?? []; } = [];

    public bool? TermsOfServiceAgreed { get; init; }

    /// <summary>The URL of the account's order list, when the CA gives one.</summary>
    public Uri? Orders { get; init; }
}

/// <summary>What a new account is registered with (RFC 8555 §7.3).</summary>
public sealed record AcmeAccountRegistration
{
    /// <summary>Contact URLs, e.g. <c>mailto:admin@example.com</c>.</summary>
    public IReadOnlyList<string> Contact { get; init => field = value ?? []; } = [];

    /// <summary>Whether the operator agrees to the CA's terms of service (<see cref="AcmeDirectoryMeta.TermsOfService"/>).</summary>
    public bool TermsOfServiceAgreed { get; init; }

    /// <summary>External account binding, for CAs that require it (<see cref="AcmeDirectoryMeta.ExternalAccountRequired"/>).</summary>
    public AcmeExternalAccountBinding? ExternalAccountBinding { get; init; }
}

[JsonConverter(typeof(JsonStringEnumConverter<AcmeAccountStatus>))]
public enum AcmeAccountStatus
{
    [JsonStringEnumMemberName("valid")]
    Valid,

    [JsonStringEnumMemberName("deactivated")]
    Deactivated,

    [JsonStringEnumMemberName("revoked")]
    Revoked,
}
