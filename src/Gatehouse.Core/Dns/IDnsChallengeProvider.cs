namespace Gatehouse.Dns;

/// <summary>
/// Publishes and removes the TXT records of ACME DNS-01 challenges (RFC 8555 §8.4) in some DNS zone.
/// </summary>
/// <remarks>
/// <para>Names are fully qualified (<c>_acme-challenge.example.com.</c>; a missing final dot is added) and compared
/// case-insensitively. Values are the challenge digests, base64url text.</para>
/// <para>Several values can live under one name at once (a wildcard and its base name share
/// <c>_acme-challenge.example.com.</c>): <see cref="PresentAsync"/> adds one value beside the others and
/// <see cref="CleanupAsync"/> removes only the value it is given. Presenting a value that is already there and
/// removing one that is not are not errors.</para>
/// <para>Implementations are safe to call concurrently for different names and values. Cancellation stops waiting;
/// a change the DNS server already received may still take effect. Failures are <see cref="DnsException"/>s that
/// name the record, zone and server, never a secret.</para>
/// </remarks>
public interface IDnsChallengeProvider
{
    /// <summary>Adds <paramref name="value"/> to the TXT records at <paramref name="recordName"/>.</summary>
    /// <exception cref="DnsException">The change was refused or could not be made.</exception>
    Task PresentAsync(string recordName, string value, CancellationToken cancellationToken);

    /// <summary>Removes <paramref name="value"/> (only that value) from the TXT records at <paramref name="recordName"/>.</summary>
    /// <exception cref="DnsException">The change was refused or could not be made.</exception>
    Task CleanupAsync(string recordName, string value, CancellationToken cancellationToken);

    /// <summary>
    /// Returns once every nameserver the provider checks (the zone's authoritative servers, or those configured)
    /// answers a direct, non-recursive TXT query for <paramref name="recordName"/> with <paramref name="value"/>
    /// among its records. Polls with a backoff that starts at 50 ms and is capped at 1 s.
    /// </summary>
    /// <exception cref="DnsException">The value was not visible everywhere within <paramref name="timeout"/>; the
    /// message says which server did not show it and what it answered last.</exception>
    Task WaitUntilVisibleAsync(string recordName, string value, TimeSpan timeout, CancellationToken cancellationToken);
}
