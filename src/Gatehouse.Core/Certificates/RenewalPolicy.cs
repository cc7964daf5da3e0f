namespace Gatehouse.Certificates;

/// <summary>A certificate that should exist: from a site, or internal (the admin listener's).</summary>
/// <param name="Id">The certificate id (the site id; internal ids start with '_').</param>
/// <param name="Names">The names it must cover, first one as subject.</param>
/// <param name="Issuers">Issuers to try in order (never empty).</param>
/// <param name="KeyType">The key type to issue with (see <see cref="Sites.SiteDefinition.KeyTypes"/>); null: the first
/// issuer's default key type, else ec256.</param>
/// <param name="Profile">The ACME profile to ask for, if any.</param>
public sealed record CertificateDemand(string Id, IReadOnlyList<string> Names, IReadOnlyList<string> Issuers, string? KeyType = null, string? Profile = null);

/// <summary>What to do about one certificate, and when.</summary>
public enum RenewalAction
{
    /// <summary>Nothing until <see cref="RenewalDecision.DueAt"/>, then decide again.</summary>
    Wait,

    /// <summary>Order a certificate now.</summary>
    Issue,

    /// <summary>Ask the issuer for its renewal advice (RFC 9773) now.</summary>
    CheckRenewalInfo,
}

/// <summary>A renewal decision with the reason people read in logs.</summary>
public readonly record struct RenewalDecision(RenewalAction Action, DateTimeOffset DueAt, string Reason)
{
    /// <summary>Whether the work is due by time alone (a renewal, renewal advice), not because the site asks for
    /// something the record does not have; with several instances only the elected one does scheduled work.</summary>
    public bool Scheduled { get; init; }
}

/// <summary>
/// Small pure functions over a snapshot that decide when a certificate is (re)issued and how failures back off.
/// </summary>
public static class RenewalPolicy
{
    /// <summary>The first retry after a failure comes after about this long.</summary>
    public static readonly TimeSpan FirstRetry = TimeSpan.FromMinutes(1);

    /// <summary>Retries never wait longer than this.</summary>
    public static readonly TimeSpan MaxRetry = TimeSpan.FromHours(6);

    public static RenewalDecision Decide(CertificateDemand demand, CertificateRecord? record, DateTimeOffset now)
    {
        if (record is null)
        {
            return new(RenewalAction.Issue, now, "no certificate yet");
        }

        var failing = record.ConsecutiveFailures > 0 && record.RetryAfter is { } retry && retry > now;
        string? reason = null;
        var dueByTime = false;
        if (!record.HasChain)
        {
            reason = "not issued yet";
        }
        else if (!SameNames(demand.Names, record.Names))
        {
            reason = "the names changed";
        }
        else if (record.Issuer is null || !demand.Issuers.Contains(record.Issuer, StringComparer.Ordinal))
        {
            reason = "the issuers changed";
        }
        else if (demand.KeyType is { } keyType && (record.KeyType ?? "ec256") != keyType)
        {
            reason = "the key type changed";
        }
        else if (record.Profile != demand.Profile)
        {
            reason = "the profile changed";
        }
        else if (record.RenewAfter is not { } renewAfter || now >= renewAfter)
        {
            reason = "due for renewal";
            dueByTime = true;
        }

        if (reason is null)
        {
            // The CA's renewal advice (RFC 9773) is asked for when it said to, unless renewal comes first anyway.
            if (record.RenewalInfoCheckAt is { } check && check < record.RenewAfter!.Value)
            {
                return check <= now
                    ? new(RenewalAction.CheckRenewalInfo, now, "renewal information due") { Scheduled = true }
                    : new(RenewalAction.Wait, check, "valid; renewal information due later");
            }

            return new(RenewalAction.Wait, record.RenewAfter!.Value, "valid");
        }

        // A failure whose retry time has not come holds back another attempt for the same names; a change of names
        // since that attempt is a new request and goes now.
        if (failing && SameNames(demand.Names, record.AttemptedNames ?? record.Names))
        {
            return new(RenewalAction.Wait, record.RetryAfter!.Value, $"{reason}; retrying after the last failure");
        }

        return new(RenewalAction.Issue, now, reason) { Scheduled = dueByTime };
    }

    /// <summary>When renewal is due: when one third of the lifetime is left.</summary>
    public static DateTimeOffset RenewAfter(DateTimeOffset notBefore, DateTimeOffset notAfter) =>
        notAfter - ((notAfter - notBefore) / 3);

    /// <summary>Exponential backoff with ±20% jitter, from <see cref="FirstRetry"/> up to <see cref="MaxRetry"/>; an
    /// issuer's own retry time wins when it is later.</summary>
    public static DateTimeOffset NextRetry(int consecutiveFailures, DateTimeOffset now, DateTimeOffset? issuerRetryAfter, double jitter01)
    {
        var exponent = Math.Clamp(consecutiveFailures - 1, 0, 20);
        var delay = Math.Min(MaxRetry.TotalSeconds, FirstRetry.TotalSeconds * Math.Pow(2, exponent));
        delay *= 0.8 + (0.4 * Math.Clamp(jitter01, 0, 1));
        var at = now + TimeSpan.FromSeconds(delay);
        return issuerRetryAfter is { } hint && hint > at ? hint : at;
    }

    /// <summary>Same set of names, order ignored (names are normalized lower case).</summary>
    public static bool SameNames(IReadOnlyList<string> a, IReadOnlyList<string> b) =>
        a.Count == b.Count && a.Order(StringComparer.Ordinal).SequenceEqual(b.Order(StringComparer.Ordinal), StringComparer.Ordinal);
}
