using System.Diagnostics.CodeAnalysis;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gatehouse.Acme;

/// <summary>
/// A problem document (RFC 7807 / RFC 9457) as an ACME server sends it (RFC 8555 §6.7), or one this client makes for
/// a failure on its own side (transport, unusable response). Immutable; <see cref="IsRetryable"/> says whether trying
/// again unchanged can help.
/// </summary>
public sealed record AcmeProblem
{
    /// <summary>The prefix of the ACME error types (RFC 8555 §6.7).</summary>
    public const string AcmeErrorPrefix = "urn:ietf:params:acme:error:";

    private const string ClientTypePrefix = "urn:gatehouse:acme:";

    /// <summary>This client could not reach the server, or the server did not answer in time. Retryable.</summary>
    public const string TransportType = ClientTypePrefix + "transport";

    /// <summary>The server answered with something that is not what RFC 8555 says it sends. Retryable.</summary>
    public const string InvalidResponseType = ClientTypePrefix + "invalidResponse";

    /// <summary>No solver offered can answer any challenge of an authorization. Not retryable.</summary>
    public const string NoUsableChallengeType = ClientTypePrefix + "noUsableChallenge";

    /// <summary>An order names a profile the CA's directory does not offer. Not retryable.</summary>
    public const string ProfileNotOfferedType = ClientTypePrefix + "profileNotOffered";

    /// <summary>A URI reference that identifies the problem type; <c>about:blank</c> when the server gave none.</summary>
    public string Type { get; init; } = "about:blank";

    public string? Title { get; init; }

    public string? Detail { get; init; }

    /// <summary>The HTTP status code the server gave in the document (or, when it gave none, of the response).</summary>
    public int? Status { get; init; }

    public string? Instance { get; init; }

    /// <summary>The identifier a subproblem is about (RFC 8555 §6.7.1).</summary>
    public AcmeIdentifier? Identifier { get; init; }

    /// <summary>Problems with single identifiers of a request that failed as a whole (RFC 8555 §6.7.1).</summary>
    public IReadOnlyList<AcmeProblem> Subproblems { get; init => field = value ?? []; } = [];

    /// <summary>The earliest time the server asked to be tried again (from <c>Retry-After</c>), when it said.</summary>
    [JsonIgnore]
    public DateTimeOffset? RetryAfter { get; init; }

    /// <summary>The ACME error name (<c>badNonce</c>, <c>rateLimited</c>, …, see <see cref="AcmeErrors"/>) when
    /// <see cref="Type"/> is in the ACME namespace; otherwise null.</summary>
    [JsonIgnore]
    public string? AcmeError =>
        Type.StartsWith(AcmeErrorPrefix, StringComparison.Ordinal) ? Type[AcmeErrorPrefix.Length..] : null;

    /// <summary>
    /// Whether the same request may succeed later: transient server states (<c>badNonce</c>, <c>rateLimited</c>
    /// after its time, <c>serverInternal</c>), validation failures of the network kind (<c>connection</c>,
    /// <c>dns</c>, <c>tls</c>), transport failures and 5xx/429 answers without an ACME error type. Refusals
    /// (<c>malformed</c>, <c>unauthorized</c>, <c>rejectedIdentifier</c>, <c>caa</c>, <c>badCSR</c>, …) are not. A
    /// <c>compound</c> problem is retryable when every subproblem is.
    /// </summary>
    [JsonIgnore]
    public bool IsRetryable => AcmeError switch
    {
        AcmeErrors.BadNonce or AcmeErrors.RateLimited or AcmeErrors.ServerInternal
            or AcmeErrors.Connection or AcmeErrors.Dns or AcmeErrors.Tls => true,
        AcmeErrors.Compound => Subproblems.Count > 0 && Subproblems.All(p => p.IsRetryable),
        null => Type is TransportType or InvalidResponseType
            || (!Type.StartsWith(ClientTypePrefix, StringComparison.Ordinal) && Status is >= 500 or 429),
        _ => false,
    };

    /// <summary>Whether this is the ACME error <paramref name="acmeError"/> (a name from <see cref="AcmeErrors"/>).</summary>
    public bool Is(string acmeError) => string.Equals(AcmeError, acmeError, StringComparison.Ordinal);

    /// <summary>Reads a problem document; false when <paramref name="json"/> is not one. Never throws.</summary>
    public static bool TryParse(ReadOnlySpan<byte> json, [NotNullWhen(true)] out AcmeProblem? problem)
    {
        try
        {
            problem = JsonSerializer.Deserialize(json, AcmeJson.Default.AcmeProblem);
            return problem is not null;
        }
        catch (JsonException)
        {
            problem = null;
            return false;
        }
    }

    /// <summary>One line for logs and exception messages: type, status, detail and the subproblems.</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        Append(text, this);
        if (Subproblems.Count > 0)
        {
            text.Append(" [");
            for (var i = 0; i < Subproblems.Count; i++)
            {
                text.Append(i == 0 ? "" : "; ");
                Append(text, Subproblems[i]);
            }

            text.Append(']');
        }

        return text.ToString();
    }

    private static void Append(StringBuilder text, AcmeProblem problem)
    {
        if (problem.Identifier is { } identifier)
        {
            text.Append(identifier.Type).Append(':').Append(identifier.Value).Append(": ");
        }

        text.Append(problem.AcmeError ?? problem.Type);
        if (problem.Status is { } status)
        {
            text.Append(" (HTTP ").Append(status).Append(')');
        }

        var detail = problem.Detail ?? problem.Title;
        if (!string.IsNullOrEmpty(detail))
        {
            text.Append(": ").Append(detail);
        }
    }
}

/// <summary>The ACME error names (RFC 8555 §6.7, RFC 9773 §7.4, ACME profiles): <see cref="AcmeProblem.AcmeError"/>.</summary>
public static class AcmeErrors
{
    public const string AccountDoesNotExist = "accountDoesNotExist";
    public const string AlreadyReplaced = "alreadyReplaced";
    public const string AlreadyRevoked = "alreadyRevoked";
    public const string BadCsr = "badCSR";
    public const string BadNonce = "badNonce";
    public const string BadPublicKey = "badPublicKey";
    public const string BadRevocationReason = "badRevocationReason";
    public const string BadSignatureAlgorithm = "badSignatureAlgorithm";
    public const string Caa = "caa";
    public const string Compound = "compound";
    public const string Connection = "connection";
    public const string Dns = "dns";
    public const string ExternalAccountRequired = "externalAccountRequired";
    public const string IncorrectResponse = "incorrectResponse";
    public const string InvalidContact = "invalidContact";
    public const string InvalidProfile = "invalidProfile";
    public const string Malformed = "malformed";
    public const string OrderNotReady = "orderNotReady";
    public const string RateLimited = "rateLimited";
    public const string RejectedIdentifier = "rejectedIdentifier";
    public const string ServerInternal = "serverInternal";
    public const string Tls = "tls";
    public const string Unauthorized = "unauthorized";
    public const string UnsupportedContact = "unsupportedContact";
    public const string UnsupportedIdentifier = "unsupportedIdentifier";
    public const string UserActionRequired = "userActionRequired";
}

/// <summary>An ACME request failed; <see cref="Problem"/> says how and whether retrying can help.</summary>
public sealed class AcmeException : Exception
{
    public AcmeException(AcmeProblem problem, Exception? innerException = null)
        : base(problem.ToString(), innerException) => Problem = problem;

    public AcmeProblem Problem { get; }

    /// <summary>Shorthand for <c>Problem.IsRetryable</c>.</summary>
    public bool IsRetryable => Problem.IsRetryable;
}
