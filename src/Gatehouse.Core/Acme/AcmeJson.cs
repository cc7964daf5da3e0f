using System.Text.Json.Serialization;

namespace Gatehouse.Acme;

/// <summary>The JSON shapes of the ACME wire (source-generated; RFC 8555 member names are camelCase).</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AcmeDirectory))]
[JsonSerializable(typeof(AcmeAccount))]
[JsonSerializable(typeof(AcmeOrder))]
[JsonSerializable(typeof(AcmeAuthorization))]
[JsonSerializable(typeof(AcmeChallenge))]
[JsonSerializable(typeof(AcmeProblem))]
[JsonSerializable(typeof(AcmeRenewalInfo))]
[JsonSerializable(typeof(JsonWebKey))]
[JsonSerializable(typeof(JwsHeader))]
[JsonSerializable(typeof(FlattenedJws))]
[JsonSerializable(typeof(NewAccountPayload))]
[JsonSerializable(typeof(ContactUpdatePayload))]
[JsonSerializable(typeof(DeactivationPayload))]
[JsonSerializable(typeof(KeyChangePayload))]
[JsonSerializable(typeof(NewOrderPayload))]
[JsonSerializable(typeof(FinalizePayload))]
[JsonSerializable(typeof(RevocationPayload))]
internal sealed partial class AcmeJson : JsonSerializerContext;

/// <summary>newAccount (RFC 8555 §7.3).</summary>
internal sealed record NewAccountPayload(
    IReadOnlyList<string>? Contact,
    bool? TermsOfServiceAgreed,
    bool? OnlyReturnExisting,
    FlattenedJws? ExternalAccountBinding);

/// <summary>An account's new contacts (RFC 8555 §7.3.2).</summary>
internal sealed record ContactUpdatePayload(IReadOnlyList<string> Contact);

/// <summary>Deactivation of an account (RFC 8555 §7.3.6) or an authorization (§7.5.2).</summary>
internal sealed record DeactivationPayload(string Status = "deactivated");

/// <summary>The payload of the inner JWS of a key change (RFC 8555 §7.3.5).</summary>
internal sealed record KeyChangePayload(string Account, JsonWebKey OldKey);

/// <summary>newOrder (RFC 8555 §7.4; RFC 9773 §5; ACME profiles).</summary>
internal sealed record NewOrderPayload(
    IReadOnlyList<AcmeIdentifier> Identifiers,
    DateTimeOffset? NotBefore,
    DateTimeOffset? NotAfter,
    string? Replaces,
    string? Profile);

/// <summary>finalize (RFC 8555 §7.4): the CSR, base64url DER.</summary>
internal sealed record FinalizePayload(string Csr);

/// <summary>revokeCert (RFC 8555 §7.6): the certificate, base64url DER, and an optional CRL reason code.</summary>
internal sealed record RevocationPayload(string Certificate, int? Reason);
