using System.Text;

namespace Gatehouse.Dns;

/// <summary>
/// A DNS-01 provider that changes a zone with RFC 2136 dynamic updates signed with TSIG (RFC 8945): BIND, Knot,
/// PowerDNS and most primary servers accept them.
/// </summary>
/// <remarks>The secret never appears in <see cref="object.ToString"/>: the generated record printer is replaced.</remarks>
public sealed record Rfc2136Options
{
    /// <summary>The primary server that takes updates: <c>host</c> or <c>host:port</c> (port 53 by default).</summary>
    public required string Server { get; init; }

    /// <summary>The zone to update (e.g. <c>example.com.</c>); null to find it with SOA queries to <see cref="Server"/>.</summary>
    public string? Zone { get; init; }

    /// <summary>The TSIG key's name as the server knows it.</summary>
    public required string KeyName { get; init; }

    public TsigAlgorithm Algorithm { get; init; } = TsigAlgorithm.HmacSha256;

    /// <summary>The decoded TSIG secret; the configuration layer reads its base64 from an environment variable or a
    /// file. The provider keeps its own copy.</summary>
    public required byte[] Secret { get; init; }

    /// <summary>The TTL of the records added (seconds).</summary>
    public uint Ttl { get; init; } = 60;

    /// <summary>How long one try waits for the server's answer.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>How many times a request is sent before giving up (UDP loses datagrams).</summary>
    public int Attempts { get; init; } = 3;

    /// <summary>Where to wait for records to be visible; null: ask <see cref="Server"/> itself. Give the zone's
    /// secondaries (or an empty <see cref="DnsVisibilityOptions.Nameservers"/> list to find them by NS records) when
    /// the CA may ask those.</summary>
    public DnsVisibilityOptions? Visibility { get; init; }

    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append("Server = ").Append(Server)
            .Append(", Zone = ").Append(Zone)
            .Append(", KeyName = ").Append(KeyName)
            .Append(", Algorithm = ").Append(Algorithm)
            .Append(", Secret = (hidden), Ttl = ").Append(Ttl)
            .Append(", Timeout = ").Append(Timeout)
            .Append(", Attempts = ").Append(Attempts)
            .Append(", Visibility = ").Append(Visibility);
        return true;
    }
}
