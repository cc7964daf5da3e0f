using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;

namespace Gatehouse.Acme;

/// <summary>The ACME client's activity source and meter (both named <c>Gatehouse.Acme</c>).</summary>
internal static class AcmeDiagnostics
{
    public const string Name = "Gatehouse.Acme";

    public static readonly ActivitySource Source = new(Name);

    private static readonly Meter Meter = new(Name);

    public static readonly Histogram<double> RequestDuration = Meter.CreateHistogram<double>(
        "gatehouse.acme.request.duration", "s", "Duration of ACME requests, by operation and HTTP status (0: no response)");

    public static readonly Counter<long> BadNonceRetries = Meter.CreateCounter<long>(
        "gatehouse.acme.bad_nonce.retries", description: "Requests sent again after a badNonce refusal");

    public static readonly Counter<long> Problems = Meter.CreateCounter<long>(
        "gatehouse.acme.problems", description: "Problem documents received, by ACME error");

    public static readonly Counter<long> Issued = Meter.CreateCounter<long>(
        "gatehouse.acme.certificates.issued", description: "Certificates issued through AcmeAccountSession.IssueCertificateAsync");

    public static void Record(string operation, int status, long startedTimestamp) =>
        RequestDuration.Record(
            Stopwatch.GetElapsedTime(startedTimestamp).TotalSeconds,
            new KeyValuePair<string, object?>("acme.operation", operation),
            new KeyValuePair<string, object?>("http.response.status_code", status));
}

/// <summary>The ACME client's log messages (event ids 7001–7099). Never key material: problem details and URLs only.</summary>
internal static partial class AcmeLog
{
    [LoggerMessage(EventId = 7001, Level = LogLevel.Information, Message = "ACME account {AccountUrl} {Outcome}")]
    private static partial void AccountRegistered(ILogger logger, Uri accountUrl, string outcome);

    public static void AccountRegistered(ILogger logger, Uri accountUrl, bool created) =>
        AccountRegistered(logger, accountUrl, created ? "created" : "found (the key was registered already)");

    [LoggerMessage(EventId = 7002, Level = LogLevel.Debug, Message = "ACME {Operation} refused with badNonce; sending again (retry {Retry})")]
    public static partial void BadNonceRetry(ILogger logger, string operation, int retry);

    [LoggerMessage(EventId = 7003, Level = LogLevel.Debug, Message = "ACME {Operation} refused: {Problem}")]
    public static partial void Refused(ILogger logger, string operation, string problem);

    [LoggerMessage(EventId = 7004, Level = LogLevel.Warning, Message = "ACME {Operation} failed in transport: {Detail}")]
    public static partial void TransportFailed(ILogger logger, string operation, string detail);

    [LoggerMessage(EventId = 7005, Level = LogLevel.Information, Message = "Revoked certificate {Serial} (reason {Reason}), signed by the {Signer}")]
    public static partial void Revoked(ILogger logger, string serial, string reason, string signer);

    [LoggerMessage(EventId = 7006, Level = LogLevel.Warning, Message = "The ACME server no longer knows account {AccountUrl}; registering the same key again")]
    public static partial void AccountForgotten(ILogger logger, Uri accountUrl);

    [LoggerMessage(EventId = 7007, Level = LogLevel.Information, Message = "ACME account {OldUrl} is now {NewUrl}")]
    public static partial void AccountReplaced(ILogger logger, Uri oldUrl, Uri newUrl);

    [LoggerMessage(EventId = 7008, Level = LogLevel.Information, Message = "ACME account {AccountUrl}: {Change}")]
    public static partial void AccountChanged(ILogger logger, Uri accountUrl, string change);

    [LoggerMessage(EventId = 7009, Level = LogLevel.Information, Message = "ACME order {OrderUrl} for {Names} issued certificate {Serial} in {Seconds:0.000} s")]
    public static partial void Issued(ILogger logger, Uri orderUrl, string names, string serial, double seconds);

    [LoggerMessage(EventId = 7010, Level = LogLevel.Warning, Message = "Cleaning up the {ChallengeType} answer for {Identifier} failed: {Reason}")]
    public static partial void CleanupFailed(ILogger logger, string challengeType, string identifier, string reason);

    [LoggerMessage(EventId = 7011, Level = LogLevel.Information, Message = "No chain of {CertificateUrl} chains to issuer '{Preferred}'; keeping the default chain (issuer '{Issuer}')")]
    public static partial void PreferredChainMissing(ILogger logger, Uri certificateUrl, string preferred, string issuer);
}
