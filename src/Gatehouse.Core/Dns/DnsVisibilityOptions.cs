namespace Gatehouse.Dns;

/// <summary>Where <see cref="IDnsChallengeProvider.WaitUntilVisibleAsync"/> looks for a challenge record.</summary>
public sealed record DnsVisibilityOptions
{
    /// <summary>
    /// Nameservers to query directly (<c>host</c> or <c>host:port</c>), each of which must show the value. Empty: the
    /// zone's authoritative servers, found through <see cref="Resolver"/> (SOA, then NS, then their A records).
    /// </summary>
    public IReadOnlyList<string> Nameservers { get; init; } = [];

    /// <summary>The recursive resolver that finds the zone's nameservers when <see cref="Nameservers"/> is empty;
    /// default: the first <c>nameserver</c> in /etc/resolv.conf.</summary>
    public string? Resolver { get; init; }

    /// <summary>The port the servers named by NS records are queried on: 53, except for test zones served elsewhere.</summary>
    public int AuthoritativePort { get; init; } = DnsServerAddress.DefaultPort;

    /// <summary>How long one query waits for its answer before the next poll asks again.</summary>
    public TimeSpan QueryTimeout { get; init; } = TimeSpan.FromSeconds(2);
}
