using System.Globalization;
using System.Net;
using Gatehouse.Sites;

namespace Gatehouse.Edge.Passthrough;

/// <summary>
/// A passthrough site as the edge relays it: its TCP backends in order, with a round-robin position and each
/// backend's last failure. Built when the sites change; kept (with its state) across changes that leave the site
/// as it was.
/// </summary>
public sealed class PassthroughSite
{
    private int _next = -1;

    /// <param name="definition">A site whose <see cref="SiteDefinition.Mode"/> is passthrough and whose backends the
    /// validator normalized to <c>tcp://host:port</c>.</param>
    /// <exception cref="ArgumentException">A backend is not in that form, or there is none.</exception>
    public PassthroughSite(SiteDefinition definition)
    {
        if (definition.Backends.Count == 0)
        {
            throw new ArgumentException($"Passthrough site '{definition.Id}' has no backend.", nameof(definition));
        }

        Definition = definition;
        var backends = new PassthroughBackend[definition.Backends.Count];
        for (var i = 0; i < backends.Length; i++)
        {
            backends[i] = new PassthroughBackend(definition.Backends[i]);
        }

        Backends = backends;
    }

    public SiteDefinition Definition { get; }

    public string Id => Definition.Id;

    public ProxyProtocolVersion ProxyProtocol => Definition.ProxyProtocol;

    /// <summary>The backends in the order the site lists them.</summary>
    public IReadOnlyList<PassthroughBackend> Backends { get; }

    /// <summary>Where the next connection starts looking: each call moves one backend on.</summary>
    public int NextStart() => (int)((uint)Interlocked.Increment(ref _next) % (uint)Backends.Count);
}

/// <summary>One TCP backend of a passthrough site and when a connection to it last failed.</summary>
public sealed class PassthroughBackend
{
    private long _failedAt;

    /// <param name="address"><c>tcp://host:port</c>, as <see cref="SiteValidator.TryValidateTcpBackend"/> writes it.</param>
    /// <exception cref="ArgumentException"><paramref name="address"/> is not in that form.</exception>
    public PassthroughBackend(string address)
    {
        Address = address;
        if (!address.StartsWith("tcp://", StringComparison.Ordinal))
        {
            throw new ArgumentException($"'{address}' is not tcp://host:port.", nameof(address));
        }

        var hostPort = address.AsSpan(6);
        var colon = hostPort.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(hostPort[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            throw new ArgumentException($"'{address}' is not tcp://host:port.", nameof(address));
        }

        var host = hostPort[..colon].Trim("[]");
        EndPoint = IPAddress.TryParse(host, out var ip) ? new IPEndPoint(ip, port) : new DnsEndPoint(host.ToString(), port);
    }

    /// <summary><c>tcp://host:port</c>.</summary>
    public string Address { get; }

    /// <summary>An <see cref="IPEndPoint"/>, or a <see cref="DnsEndPoint"/> resolved on each connection.</summary>
    public EndPoint EndPoint { get; }

    /// <summary>Whether a connection to this backend failed less than <paramref name="window"/> ago.</summary>
    public bool IsResting(TimeProvider time, TimeSpan window)
    {
        var failedAt = Volatile.Read(ref _failedAt);
        return failedAt != 0 && time.GetElapsedTime(failedAt) < window;
    }

    /// <summary>Whether the last failure happened before <paramref name="timestamp"/> (a <see cref="TimeProvider"/> timestamp).</summary>
    public bool FailedBefore(long timestamp)
    {
        var failedAt = Volatile.Read(ref _failedAt);
        return failedAt != 0 && failedAt < timestamp;
    }

    /// <summary>Records a failed connection; returns whether the backend was fine until now.</summary>
    public bool MarkFailed(TimeProvider time) => Interlocked.Exchange(ref _failedAt, Math.Max(1, time.GetTimestamp())) == 0;

    /// <summary>Records a connection that worked; returns whether the backend had failed before.</summary>
    public bool MarkWorking() => Volatile.Read(ref _failedAt) != 0 && Interlocked.Exchange(ref _failedAt, 0) != 0;
}
