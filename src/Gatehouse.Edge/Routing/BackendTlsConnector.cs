using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Edge.Tls;
using Gatehouse.Keys;
using Gatehouse.Sites;
using Gatehouse.Storage;
using Microsoft.Extensions.Logging;

namespace Gatehouse.Edge.Routing;

/// <summary>
/// Opens the TLS connections of one re-encrypt site's HTTP client: TCP to the backend, then a handshake that sends
/// the configured SNI, presents the site's client certificate and verifies the backend against the site's CA bundle
/// (or the system trust) and name. <c>SocketsHttpHandler</c> cannot do this itself: it overwrites the SNI with the
/// request's Host, so the handler is given http URLs (see <see cref="BackendSchemeHandler"/>) and this connect
/// callback returns the TLS stream, over which it speaks HTTP/1.1 and pools connections as usual. A backend that
/// fails verification gets no byte of the request.
/// </summary>
internal sealed class BackendTlsConnector
{
    private static readonly TimeSpan RepeatLogAfter = TimeSpan.FromMinutes(1);
    private static readonly Oid ServerAuth = new("1.3.6.1.5.5.7.3.1");
    private static readonly List<SslApplicationProtocol> Http11 = [SslApplicationProtocol.Http11];

    private readonly string _siteId;
    private readonly X509Certificate2Collection? _trust;
    private readonly string? _serverName;
    private readonly string? _sni;
    private readonly SslStreamCertificateContext? _clientCertificate;
    private readonly string? _unusable;
    private readonly ILogger _logger;

    /// <summary>The last failure logged per backend, so a failing backend costs a line a minute, not one per request.</summary>
    private readonly ConcurrentDictionary<string, (string Reason, DateTime At)> _logged = new(StringComparer.Ordinal);

    private BackendTlsConnector(string siteId, X509Certificate2Collection? trust, string? serverName, string? sni, SslStreamCertificateContext? clientCertificate, string? unusable, ILogger logger)
    {
        _siteId = siteId;
        _trust = trust;
        _serverName = serverName;
        _sni = sni;
        _clientCertificate = clientCertificate;
        _unusable = unusable;
        _logger = logger;
    }

    /// <summary>Prepares the site's settings once per HTTP client: the CA bundle parsed, the client key opened. A
    /// site whose settings cannot be used gets a connector that refuses every connection with the reason.</summary>
    public static BackendTlsConnector Create(SiteDefinition site, EnvelopeCipher cipher, ILogger logger)
    {
        var tls = site.BackendTls ?? new BackendTls();
        X509Certificate2Collection? trust = null;
        try
        {
            if (tls.CaPem is not null)
            {
                trust = [];
                trust.ImportFromPem(tls.CaPem);
            }

            SslStreamCertificateContext? client = null;
            if (tls.ClientCertificatePem is not null && tls.SealedClientKey is not null)
            {
                var chain = new X509Certificate2Collection();
                chain.ImportFromPem(tls.ClientCertificatePem);
                X509Certificate2 leaf;
                using (var key = cipher.Open(StoreKeys.Site(site.Id), tls.SealedClientKey))
                {
                    leaf = CertificateCache.WithPrivateKey(chain[0], key.Span);
                }

                chain[0].Dispose();
                chain.RemoveAt(0);
                client = SslStreamCertificateContext.Create(leaf, chain, offline: true);
            }

            return new BackendTlsConnector(site.Id, trust, tls.ServerName, tls.Sni, client, null, logger);
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException)
        {
            // EnvelopeAuthenticationException names the record, never key material.
            BackendLog.SettingsUnusable(logger, site.Id, ex.Message);
            return new BackendTlsConnector(site.Id, null, null, null, null, ex.Message, logger);
        }
    }

    /// <summary>The handler's connect callback: a verified TLS stream to the backend, or an exception that YARP turns
    /// into 502.</summary>
    public async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var endpoint = context.DnsEndPoint;
        var backend = endpoint.Host.Contains(':', StringComparison.Ordinal) ? $"https://[{endpoint.Host}]:{endpoint.Port}" : $"https://{endpoint.Host}:{endpoint.Port}";
        if (_unusable is not null)
        {
            throw new BackendTlsException($"site {_siteId}: the backend TLS settings cannot be used: {_unusable}", null);
        }

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endpoint, cancellationToken);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var expected = _serverName ?? endpoint.Host;
        var verification = new Verification(this, expected);
        var ssl = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
        try
        {
            await ssl.AuthenticateAsClientAsync(
                new SslClientAuthenticationOptions
                {
                    // An IP address is never sent as SNI (RFC 6066 §3); SslStream leaves it out by itself.
                    TargetHost = _sni ?? _serverName ?? endpoint.Host,
                    EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                    ApplicationProtocols = Http11,
                    CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                    ClientCertificateContext = _clientCertificate,
                    RemoteCertificateValidationCallback = verification.Validate,
                },
                cancellationToken);
            return ssl;
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException)
        {
            await ssl.DisposeAsync();
            if (verification.Failure is { } failure)
            {
                LogOnce(backend, failure, () => BackendLog.VerificationFailed(_logger, _siteId, backend, failure));
                throw new BackendTlsException($"site {_siteId}: backend {backend} failed TLS verification: {failure}", ex);
            }

            var reason = ex.InnerException is { } inner ? $"{ex.Message} ({inner.Message})" : ex.Message;
            LogOnce(backend, reason, () => BackendLog.HandshakeFailed(_logger, _siteId, backend, reason));
            throw new BackendTlsException($"site {_siteId}: TLS handshake with backend {backend} failed: {reason}", ex);
        }
    }

    private void LogOnce(string backend, string reason, Action log)
    {
        var now = DateTime.UtcNow;
        var logged = _logged.TryGetValue(backend, out var last);
        if (!logged || last.Reason != reason || now - last.At >= RepeatLogAfter)
        {
            _logged[backend] = (reason, now);
            log();
        }
    }

    /// <summary>Names why a chain failed, with the X509 status flags for those who search logs for them.</summary>
    private static string DescribeChain(X509ChainStatus[] statuses, X509Certificate2 leaf)
    {
        var flags = X509ChainStatusFlags.NoError;
        foreach (var status in statuses)
        {
            flags |= status.Status;
        }

        var reasons = new List<string>();
        if ((flags & X509ChainStatusFlags.NotTimeValid) != 0)
        {
            reasons.Add($"expired or not yet valid (valid {leaf.NotBefore.ToUniversalTime():u} to {leaf.NotAfter.ToUniversalTime():u}; NotTimeValid)");
        }

        if ((flags & (X509ChainStatusFlags.UntrustedRoot | X509ChainStatusFlags.PartialChain)) != 0)
        {
            reasons.Add($"untrusted root: the chain of '{leaf.Subject}' does not lead to a trusted CA ({flags & (X509ChainStatusFlags.UntrustedRoot | X509ChainStatusFlags.PartialChain)})");
        }

        var rest = flags & ~(X509ChainStatusFlags.NotTimeValid | X509ChainStatusFlags.UntrustedRoot | X509ChainStatusFlags.PartialChain);
        if (rest != X509ChainStatusFlags.NoError || reasons.Count == 0)
        {
            reasons.Add($"chain errors: {rest}");
        }

        return "RemoteCertificateChainErrors: " + string.Join("; ", reasons);
    }

    /// <summary>One handshake's verification: the site's trust and name instead of the SNI, the failure kept for the
    /// log line.</summary>
    private sealed class Verification(BackendTlsConnector connector, string expectedName)
    {
        public string? Failure { get; private set; }

        public bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
        {
            if (certificate is null)
            {
                Failure = "RemoteCertificateNotAvailable: the backend sent no certificate";
                return false;
            }

            using var leaf = new X509Certificate2(certificate);
            var reasons = new List<string>();
            if (connector._trust is { } trust)
            {
                using var own = new X509Chain();
                own.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                own.ChainPolicy.CustomTrustStore.AddRange(trust);
                own.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                own.ChainPolicy.ApplicationPolicy.Add(ServerAuth);
                if (chain is not null)
                {
                    // The intermediates the backend sent.
                    own.ChainPolicy.ExtraStore.AddRange(chain.ChainPolicy.ExtraStore);
                    foreach (var element in chain.ChainElements)
                    {
                        own.ChainPolicy.ExtraStore.Add(element.Certificate);
                    }
                }

                if (!own.Build(leaf))
                {
                    reasons.Add(DescribeChain(own.ChainStatus, leaf));
                }
            }
            else if ((errors & SslPolicyErrors.RemoteCertificateChainErrors) != 0)
            {
                reasons.Add(DescribeChain(chain?.ChainStatus ?? [], leaf));
            }

            // The name is checked against the configured server name, not the SNI that SslStream compared with.
            if (!leaf.MatchesHostname(expectedName, allowWildcards: true, allowCommonName: false))
            {
                reasons.Add($"RemoteCertificateNameMismatch: the certificate ('{leaf.Subject}') is not valid for '{expectedName}'");
            }

            Failure = reasons.Count == 0 ? null : string.Join("; ", reasons);
            return Failure is null;
        }
    }
}

/// <summary>A TLS failure toward a re-encrypt backend, already logged by <see cref="BackendTlsConnector"/> with its
/// reason (the handler wraps it in another <see cref="HttpRequestException"/>).</summary>
internal sealed class BackendTlsException(string message, Exception? inner) : HttpRequestException(HttpRequestError.SecureConnectionError, message, inner);

/// <summary>
/// Wraps a re-encrypt site's handler: an https request goes to the handler as http to the same host and port (the
/// Host header keeps the https form), so the handler does no TLS of its own and <see cref="BackendTlsConnector"/>
/// does it with the site's settings. Active health probes go through the same client, so they are verified too.
/// </summary>
internal sealed class BackendSchemeHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (request.RequestUri is { } uri && uri.Scheme == Uri.UriSchemeHttps)
        {
            request.Headers.Host ??= uri.Authority;
            request.RequestUri = new UriBuilder(uri) { Scheme = Uri.UriSchemeHttp, Port = uri.Port }.Uri;
            request.Version = HttpVersion.Version11;
            request.VersionPolicy = HttpVersionPolicy.RequestVersionOrLower;
        }

        return base.SendAsync(request, cancellationToken);
    }
}

internal static partial class BackendLog
{
    [LoggerMessage(EventId = 5701, Level = LogLevel.Warning, Message = "Site {SiteId}: backend {Backend} failed TLS verification; no request was sent: {Reason}")]
    public static partial void VerificationFailed(ILogger logger, string siteId, string backend, string reason);

    [LoggerMessage(EventId = 5702, Level = LogLevel.Warning, Message = "Site {SiteId}: TLS handshake with backend {Backend} failed: {Reason}")]
    public static partial void HandshakeFailed(ILogger logger, string siteId, string backend, string reason);

    [LoggerMessage(EventId = 5703, Level = LogLevel.Error, Message = "Site {SiteId}: the backend TLS settings cannot be used, every request gets 502: {Reason}")]
    public static partial void SettingsUnusable(ILogger logger, string siteId, string reason);

    [LoggerMessage(EventId = 5704, Level = LogLevel.Warning, Message = "Site {SiteId}: request to backend {Backend} failed ({Error}): {Reason}")]
    public static partial void ProxyFailed(ILogger logger, string siteId, string backend, string error, string reason);

    [LoggerMessage(EventId = 5801, Level = LogLevel.Warning, Message = "Site {SiteId}: backend {Backend} is unhealthy after {Failures} failed health checks: {Reason}")]
    public static partial void BackendUnhealthy(ILogger logger, string siteId, string backend, int failures, string reason);

    [LoggerMessage(EventId = 5802, Level = LogLevel.Information, Message = "Site {SiteId}: backend {Backend} is healthy after {Successes} passed health checks")]
    public static partial void BackendHealthy(ILogger logger, string siteId, string backend, int successes);
}
