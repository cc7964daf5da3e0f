using System.Text.Json.Serialization;

namespace Gatehouse.Acme;

/// <summary>An order (RFC 8555 §7.1.3; <c>replaces</c>: RFC 9773 §5; <c>profile</c>: ACME profiles).</summary>
public sealed record AcmeOrder
{
    /// <summary>The order URL. Set on every order this client returns.</summary>
    [JsonIgnore]
    public Uri Url { get; init; } = null!;

    public required AcmeOrderStatus Status { get; init; }

    public DateTimeOffset? Expires { get; init; }

    public IReadOnlyList<AcmeIdentifier> Identifiers { get; init => field = value ?? []; } = [];

    public DateTimeOffset? NotBefore { get; init; }

    public DateTimeOffset? NotAfter { get; init; }

    /// <summary>Why the order became invalid.</summary>
    public AcmeProblem? Error { get; init; }

    public IReadOnlyList<Uri> Authorizations { get; init => field = value ?? []; } = [];

    public required Uri Finalize { get; init; }

    /// <summary>The certificate URL once the order is valid.</summary>
    public Uri? Certificate { get; init; }

    /// <summary>The ARI certificate identifier this order replaces (RFC 9773).</summary>
    public string? Replaces { get; init; }

    public string? Profile { get; init; }
}

/// <summary>What to order (RFC 8555 §7.4).</summary>
public sealed record AcmeOrderRequest
{
    public required IReadOnlyList<AcmeIdentifier> Identifiers { get; init; }

    public DateTimeOffset? NotBefore { get; init; }

    public DateTimeOffset? NotAfter { get; init; }

    /// <summary>
    /// The ARI identifier (<see cref="AcmeCertificateId"/>) of the certificate this order renews (RFC 9773 §5). Sent
    /// only when the CA's directory offers <c>renewalInfo</c>; other CAs would not know the field.
    /// </summary>
    public string? Replaces { get; init; }

    /// <summary>A profile from <see cref="AcmeDirectoryMeta.Profiles"/>. A profile the CA does not offer is refused
    /// before anything is sent.</summary>
    public string? Profile { get; init; }

    /// <summary>An order for these names: IP addresses become <c>ip</c> identifiers, everything else <c>dns</c>.</summary>
    public static AcmeOrderRequest ForNames(IEnumerable<string> names) =>
        new() { Identifiers = names.Select(AcmeIdentifier.FromName).ToArray() };
}

[JsonConverter(typeof(JsonStringEnumConverter<AcmeOrderStatus>))]
public enum AcmeOrderStatus
{
    [JsonStringEnumMemberName("pending")]
    Pending,

    [JsonStringEnumMemberName("ready")]
    Ready,

    [JsonStringEnumMemberName("processing")]
    Processing,

    [JsonStringEnumMemberName("valid")]
    Valid,

    [JsonStringEnumMemberName("invalid")]
    Invalid,
}
