using System.Buffers;
using System.IO.Pipelines;
using Gatehouse.Edge.Challenges;
using Gatehouse.Edge.Passthrough;
using Gatehouse.Edge.Routing;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Logging;

namespace Gatehouse.Edge.Tls;

/// <summary>The certificate chosen for a connection by <see cref="SniGate"/> (one instance per certificate, and one
/// per certificate and client-auth policy; shared by their connections).</summary>
public sealed class ServedCertificateFeature(ServedCertificate certificate, System.Net.Security.SslServerAuthenticationOptions? clientAuthOptions = null)
{
    public ServedCertificate Certificate { get; } = certificate;

    /// <summary>The options of the handshake: the certificate's own, or, for a site that asks for client
    /// certificates, those made from them by <see cref="ClientCertificateValidator"/>.</summary>
    public System.Net.Security.SslServerAuthenticationOptions? Options => clientAuthOptions ?? Certificate.Options;

    /// <summary>Whether the handshake asks for a client certificate (the site's client-auth policy).</summary>
    public bool AsksForClientCertificate => clientAuthOptions is not null;
}

/// <summary>
/// Connection middleware in front of TLS on the HTTPS listener: reads the ClientHello (without consuming it) and
/// switches on the mode of the site that serves the SNI name. A passthrough site's connection is relayed to its
/// backends as it is, TLS untouched (<see cref="PassthroughRelay"/>). Otherwise the gate looks the name up in the
/// <see cref="CertificateCache"/>, prepares that certificate if this is its first handshake, and either records the
/// choice for the handshake or ends the connection with a TLS alert: unrecognized_name when no site serves the name,
/// internal_error when its certificate cannot be prepared. There is no default certificate, so a client that asks
/// for a name no site serves learns no other site's names.
/// </summary>
/// <param name="cache">Certificates of the sites whose TLS the edge terminates.</param>
/// <param name="logger">Debug events per refused connection.</param>
/// <param name="helloTimeout">How long a client has to send its whole ClientHello.</param>
/// <param name="challenges">TLS-ALPN-01 answers, when ACME issuers use them.</param>
/// <param name="sites">Sites by name (every mode), for the mode switch; null: every name is offload.</param>
/// <param name="passthrough">Relays passthrough connections; null: passthrough sites are refused like unknown names.</param>
/// <param name="tlsPolicies">Per-site client authentication; null: no site asks for client certificates.</param>
/// <param name="defaultServerName">The name a ClientHello without SNI is treated as (config <c>edge:defaultSite</c>);
/// null: such connections are refused with unrecognized_name. Names no site serves are refused either way.</param>
public sealed class SniGate(CertificateCache cache, ILogger<SniGate> logger, TimeSpan helloTimeout, TlsAlpnResponder? challenges = null, SiteRoutes? sites = null, PassthroughRelay? passthrough = null, SiteTlsPolicies? tlsPolicies = null, string? defaultServerName = null)
{
    /// <summary>RFC 8446 §6: a fatal alert record, unrecognized_name(112).</summary>
    private static readonly byte[] UnrecognizedNameAlert = [21, 3, 3, 0, 2, 2, 112];

    /// <summary>RFC 8446 §6: a fatal alert record, internal_error(80).</summary>
    private static readonly byte[] InternalErrorAlert = [21, 3, 3, 0, 2, 2, 80];

    /// <summary>The Kestrel TLS callback: hands the handshake the options the gate prepared for the chosen certificate.</summary>
    public static TlsHandshakeCallbackOptions HandshakeOptions(TimeSpan handshakeTimeout) => new()
    {
        OnConnection = static context =>
        {
            if (context.Connection.Features.Get<AcmeTlsAlpnFeature>() is { } challenge)
            {
                return ValueTask.FromResult(challenge.Options);
            }

            var feature = context.Connection.Features.Get<ServedCertificateFeature>()
                ?? throw new InvalidOperationException("The SNI gate did not run before TLS on this listener.");
            return ValueTask.FromResult(feature.Options
                ?? throw new InvalidOperationException("The SNI gate chose a certificate it did not prepare."));
        },
        HandshakeTimeout = handshakeTimeout,
    };

    /// <summary>Connection middleware after TLS: an <c>acme-tls/1</c> connection has done its job once the handshake
    /// is over (RFC 8737 §3: no application data), so it is closed instead of being handed to HTTP.</summary>
    public static Task EndAcmeTlsAlpnAsync(ConnectionContext connection, ConnectionDelegate next) =>
        connection.Features.Get<AcmeTlsAlpnFeature>() is not null ? Task.CompletedTask : next(connection);

    public async Task OnConnectionAsync(ConnectionContext connection, ConnectionDelegate next)
    {
        var input = connection.Transport.Input;
        ClientHelloInfo hello;
        ClientHelloStatus status;
        // A closed connection completes the read by itself; only the timeout needs a token.
        using (var timeout = new CancellationTokenSource(helloTimeout))
        {
            try
            {
                while (true)
                {
                    var result = await input.ReadAsync(timeout.Token);
                    var buffer = result.Buffer;
                    if (!result.IsCompleted && buffer.Length < BytesBeforeParsing(buffer))
                    {
                        input.AdvanceTo(buffer.Start, buffer.End); // the first record is not all here yet
                        continue;
                    }

                    status = ClientHello.TryParse(buffer, out hello);
                    if (status == ClientHelloStatus.NeedMoreData && !result.IsCompleted && buffer.Length < ClientHello.MaxHandshakeLength * 2)
                    {
                        input.AdvanceTo(buffer.Start, buffer.End); // keep it all, wait for more
                        continue;
                    }

                    input.AdvanceTo(buffer.Start); // consume nothing: TLS reads the same bytes
                    break;
                }
            }
            catch (OperationCanceledException)
            {
                if (logger.IsEnabled(LogLevel.Debug))
                {
                    SniGateLog.HelloTimeout(logger, connection.ConnectionId, connection.RemoteEndPoint?.ToString());
                }

                connection.Abort();
                return;
            }
            catch (Exception ex) when (ex is IOException or ConnectionResetException or ConnectionAbortedException)
            {
                return; // the client went away before saying hello
            }
        }

        if (status != ClientHelloStatus.Complete)
        {
            if (logger.IsEnabled(LogLevel.Debug))
            {
                SniGateLog.NotTls(logger, connection.ConnectionId, connection.RemoteEndPoint?.ToString());
            }

            connection.Abort();
            return;
        }

        // The mode switch. A passthrough site's connection goes to its backends before anything TLS-specific here,
        // acme-tls/1 included: its backends hold their own certificates and may answer their own challenges.
        // Modes that terminate TLS (offload; later re-encrypt, mutual TLS) continue below to the certificate.
        // A client that sent no SNI (one that connects by IP address) is taken to ask for the default site, if any; so
        // is one that sent an IP address, which RFC 6066 §3 does not allow as a name but some clients send anyway.
        var name = hello.ServerName is { } sent && !IsAddressLiteral(sent) ? sent : defaultServerName;
        if (name is { } requested && sites is not null && sites.TryMatchRoute(requested, out var route) && route.Passthrough is { } relayed)
        {
            if (passthrough is null)
            {
                await RefuseAsync(connection.Transport.Output, UnrecognizedNameAlert);
                return;
            }

            await passthrough.RelayAsync(connection, relayed, requested);
            return;
        }

        // RFC 8737: a validation handshake offers only acme-tls/1; it gets the challenge certificate or nothing.
        if ((hello.Protocols & OfferedProtocols.AcmeTls1) != 0 && challenges is not null)
        {
            if (hello.ServerName is { } challenged && challenges.TryGet(challenged, out var answer))
            {
                connection.Features.Set(new AcmeTlsAlpnFeature(answer));
                await next(connection);
                return;
            }

            await RefuseAsync(connection.Transport.Output, UnrecognizedNameAlert);
            return;
        }

        if (name is not { } serverName || !cache.TryMatch(serverName, out var certificate))
        {
            if (logger.IsEnabled(LogLevel.Debug))
            {
                SniGateLog.UnknownName(logger, connection.ConnectionId, connection.RemoteEndPoint?.ToString(), hello.ServerName ?? "(none)");
            }

            await RefuseAsync(connection.Transport.Output, UnrecognizedNameAlert);
            return;
        }

        // The certificate's first handshake prepares it (its failure is logged once by the cache); later ones find it ready.
        if (!await cache.PrepareAsync(certificate))
        {
            if (logger.IsEnabled(LogLevel.Debug))
            {
                SniGateLog.Unusable(logger, connection.ConnectionId, connection.RemoteEndPoint?.ToString(), certificate.Id);
            }

            await RefuseAsync(connection.Transport.Output, InternalErrorAlert);
            return;
        }

        // A site that asks for client certificates handshakes with options made for this certificate and its policy
        // (made once, on the first handshake after either changes); the rest share the certificate's own.
        connection.Features.Set(tlsPolicies is not null && tlsPolicies.TryGet(certificate.Id, out var policy) && policy.ClientAuth is { } clientAuth
            ? clientAuth.FeatureFor(certificate)
            : certificate.Feature);
        await next(connection);
    }

    /// <summary>Whether an SNI value is an IPv4 or IPv6 literal rather than a host name.</summary>
    private static bool IsAddressLiteral(string name) =>
        name.Length > 0 && (char.IsAsciiDigit(name[0]) || name[0] is ':' or '[')
        && (name.Contains(':', StringComparison.Ordinal) || System.Net.IPAddress.TryParse(name, out var address) && address.ToString() == name);

    /// <summary>How many bytes to wait for before parsing: the whole first record once its header is in, so a client
    /// that sends its hello in small pieces does not cost a parse per piece.</summary>
    private static long BytesBeforeParsing(ReadOnlySequence<byte> buffer)
    {
        if (buffer.Length < 5)
        {
            return 5;
        }

        Span<byte> header = stackalloc byte[5];
        buffer.Slice(0, 5).CopyTo(header);
        return header[0] == 22 ? 5 + Math.Min((header[3] << 8) | header[4], ClientHello.MaxRecordLength) : 5;
    }

    private static async Task RefuseAsync(PipeWriter output, byte[] alert)
    {
        try
        {
            await output.WriteAsync(alert);
            await output.CompleteAsync();
        }
        catch (Exception ex) when (ex is IOException or ConnectionResetException or InvalidOperationException)
        {
            // The client is gone already.
        }
    }
}

internal static partial class SniGateLog
{
    [LoggerMessage(EventId = 5001, Level = LogLevel.Debug, Message = "Connection {ConnectionId} from {Remote}: no site serves '{ServerName}'; sent unrecognized_name")]
    public static partial void UnknownName(ILogger logger, string connectionId, string? remote, string serverName);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Debug, Message = "Connection {ConnectionId} from {Remote} did not start with a TLS ClientHello; closed")]
    public static partial void NotTls(ILogger logger, string connectionId, string? remote);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Debug, Message = "Connection {ConnectionId} from {Remote} sent no complete ClientHello in time; closed")]
    public static partial void HelloTimeout(ILogger logger, string connectionId, string? remote);

    [LoggerMessage(EventId = 5004, Level = LogLevel.Debug, Message = "Connection {ConnectionId} from {Remote}: certificate {CertificateId} cannot be served; sent internal_error")]
    public static partial void Unusable(ILogger logger, string connectionId, string? remote, string certificateId);
}
