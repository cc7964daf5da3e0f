using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace Gatehouse.Edge.Passthrough;

/// <summary>Limits of passthrough connections.</summary>
public sealed record PassthroughOptions
{
    /// <summary>A spliced connection that carries no byte either way for this long is closed (config
    /// <c>edge:passthroughIdleTimeout</c>).</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromHours(1);

    /// <summary>How long one connection attempt to a backend may take.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a backend that refused (or did not answer) a connection is skipped while others are there.</summary>
    public TimeSpan FailureBackoff { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The buffer for backend-to-client bytes, rented only while bytes flow (client-to-backend bytes stay in
    /// Kestrel's input pipe, bounded by its request buffer limit).</summary>
    public int BufferSize { get; init; } = 32 * 1024;
}

/// <summary>
/// Relays a passthrough connection: connects to one of the site's backends (round robin, skipping a backend that
/// failed within <see cref="PassthroughOptions.FailureBackoff"/>, each backend tried at most once), writes the site's
/// PROXY protocol header and the client's bytes so far (the ClientHello the SNI gate read without consuming), then
/// splices both directions until both have ended, half-closes included.
/// </summary>
public sealed class PassthroughRelay(PassthroughOptions options, TimeProvider time, ILogger<PassthroughRelay> logger)
{
    /// <summary>At most this many addresses of a backend's host name are tried.</summary>
    private const int MaxAddressesPerName = 4;

    public PassthroughOptions Options => options;

    internal TimeProvider Time => time;

    internal ILogger Logger => logger;

    /// <summary>Relays <paramref name="connection"/> to <paramref name="site"/>; returns when the connection is over
    /// (the caller's return closes it). Never throws for network failures.</summary>
    public async Task RelayAsync(ConnectionContext connection, PassthroughSite site, string serverName)
    {
        var (backend, chosen) = await ConnectAsync(site);
        if (backend is null)
        {
            PassthroughLog.NoBackend(logger, site.Id, connection.ConnectionId, site.Backends.Count);
            return;
        }

        if (logger.IsEnabled(LogLevel.Debug))
        {
            PassthroughLog.Relaying(logger, connection.ConnectionId, connection.RemoteEndPoint?.ToString(), serverName, site.Id, chosen!.Address);
        }

        var splice = new TcpSplice(this, connection, backend, site.ProxyProtocol);
        await splice.RunAsync();
    }

    private async Task<(Socket? Socket, PassthroughBackend? Backend)> ConnectAsync(PassthroughSite site)
    {
        var backends = site.Backends;
        var start = site.NextStart();
        var startedAt = time.GetTimestamp();

        // First the backends that have not failed lately, in round-robin order; when none of them takes the
        // connection, the resting ones get a try too (a site whose every backend failed a moment ago is not refused
        // for the whole backoff). A backend that fails during the first pass is not tried again.
        for (var pass = 0; pass < 2; pass++)
        {
            for (var i = 0; i < backends.Count; i++)
            {
                var backend = backends[(start + i) % backends.Count];
                var resting = backend.IsResting(time, options.FailureBackoff);
                if (pass == 0 ? resting : !(resting && backend.FailedBefore(startedAt)))
                {
                    continue;
                }

                var (socket, error) = await TryConnectAsync(backend.EndPoint);
                if (socket is not null)
                {
                    if (backend.MarkWorking())
                    {
                        PassthroughLog.BackendBack(logger, site.Id, backend.Address);
                    }

                    return (socket, backend);
                }

                if (backend.MarkFailed(time))
                {
                    PassthroughLog.BackendFailed(logger, site.Id, backend.Address, error, options.FailureBackoff.TotalSeconds);
                }
                else if (logger.IsEnabled(LogLevel.Debug))
                {
                    PassthroughLog.BackendStillFailing(logger, site.Id, backend.Address, error);
                }
            }
        }

        return (null, null);
    }

    /// <summary>One attempt, bounded by <see cref="PassthroughOptions.ConnectTimeout"/> (name resolution included).</summary>
    private async Task<(Socket? Socket, string Error)> TryConnectAsync(EndPoint endPoint)
    {
        using var timeout = new CancellationTokenSource(options.ConnectTimeout, time);
        try
        {
            if (endPoint is IPEndPoint ip)
            {
                return (await ConnectOneAsync(ip, timeout.Token), "");
            }

            var name = (DnsEndPoint)endPoint;
            var addresses = await System.Net.Dns.GetHostAddressesAsync(name.Host, timeout.Token);
            var error = "the name has no address";
            for (var i = 0; i < addresses.Length && i < MaxAddressesPerName; i++)
            {
                try
                {
                    return (await ConnectOneAsync(new IPEndPoint(addresses[i], name.Port), timeout.Token), "");
                }
                catch (SocketException ex)
                {
                    error = ex.SocketErrorCode.ToString();
                }
            }

            return (null, error);
        }
        catch (OperationCanceledException)
        {
            return (null, $"no connection within {options.ConnectTimeout.TotalSeconds:0.#} s");
        }
        catch (SocketException ex)
        {
            return (null, ex.SocketErrorCode.ToString());
        }
    }

    private static async Task<Socket> ConnectOneAsync(IPEndPoint endPoint, CancellationToken cancellationToken)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endPoint, cancellationToken);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}

internal static partial class PassthroughLog
{
    [LoggerMessage(EventId = 5101, Level = LogLevel.Debug, Message = "Connection {ConnectionId} from {Remote} for '{ServerName}': passthrough to site {SiteId} backend {Backend}")]
    public static partial void Relaying(ILogger logger, string connectionId, string? remote, string serverName, string siteId, string backend);

    [LoggerMessage(EventId = 5102, Level = LogLevel.Warning, Message = "Passthrough site {SiteId}: backend {Backend} refused a connection ({Error}); skipped for {BackoffSeconds} s while others are up")]
    public static partial void BackendFailed(ILogger logger, string siteId, string backend, string error, double backoffSeconds);

    [LoggerMessage(EventId = 5103, Level = LogLevel.Debug, Message = "Passthrough site {SiteId}: backend {Backend} still refuses connections ({Error})")]
    public static partial void BackendStillFailing(ILogger logger, string siteId, string backend, string error);

    [LoggerMessage(EventId = 5104, Level = LogLevel.Information, Message = "Passthrough site {SiteId}: backend {Backend} accepts connections again")]
    public static partial void BackendBack(ILogger logger, string siteId, string backend);

    [LoggerMessage(EventId = 5105, Level = LogLevel.Warning, Message = "Passthrough site {SiteId}: none of its {Backends} backend(s) took connection {ConnectionId}; closed")]
    public static partial void NoBackend(ILogger logger, string siteId, string connectionId, int backends);

    [LoggerMessage(EventId = 5106, Level = LogLevel.Debug, Message = "Passthrough connection {ConnectionId} carried no bytes for {IdleSeconds} s; closed")]
    public static partial void Idle(ILogger logger, string connectionId, double idleSeconds);

    [LoggerMessage(EventId = 5107, Level = LogLevel.Debug, Message = "Passthrough connection {ConnectionId} ended: {ToBackend} bytes to the backend, {ToClient} to the client")]
    public static partial void Ended(ILogger logger, string connectionId, long toBackend, long toClient);
}
