using Gatehouse.Keys;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;

namespace Gatehouse.Edge.Routing;

/// <summary>
/// YARP's client factory with the re-encrypt sites' TLS: a cluster whose metadata carries
/// <see cref="TlsMetadataKey"/> gets a handler whose connections go through a <see cref="BackendTlsConnector"/>
/// made from its site's settings. The metadata value is a fingerprint of those settings, so a change of CA bundle,
/// names or client certificate makes a new client (new connections, verified anew) without a restart, and any other
/// change keeps the pooled connections.
/// </summary>
internal sealed class BackendHttpClientFactory(SiteRoutes routes, EnvelopeCipher cipher, ILoggerFactory loggers)
    : ForwarderHttpClientFactory(loggers.CreateLogger<ForwarderHttpClientFactory>())
{
    /// <summary>The cluster metadata key whose value fingerprints a re-encrypt site's backend TLS settings.</summary>
    public const string TlsMetadataKey = "gatehouse.backendTls";

    private readonly ILogger _logger = loggers.CreateLogger<BackendTlsConnector>();

    protected override bool CanReuseOldClient(ForwarderHttpClientContext context) =>
        base.CanReuseOldClient(context) && Fingerprint(context.OldMetadata) == Fingerprint(context.NewMetadata);

    protected override void ConfigureHandler(ForwarderHttpClientContext context, SocketsHttpHandler handler)
    {
        base.ConfigureHandler(context, handler);
        if (Fingerprint(context.NewMetadata) is null)
        {
            return;
        }

        // The site as the routes hold it now; if it changed again since, the next config brings another client.
        var connector = routes.TryGetReencryptSite(context.ClusterId, out var site)
            ? BackendTlsConnector.Create(site, cipher, _logger)
            : null;
        handler.ConnectCallback = connector is null
            ? static (_, _) => throw new HttpRequestException(HttpRequestError.SecureConnectionError, "the site is gone")
            : connector.ConnectAsync;
    }

    protected override HttpMessageHandler WrapHandler(ForwarderHttpClientContext context, HttpMessageHandler handler)
    {
        var wrapped = base.WrapHandler(context, handler);
        return Fingerprint(context.NewMetadata) is null ? wrapped : new BackendSchemeHandler(wrapped);
    }

    private static string? Fingerprint(IReadOnlyDictionary<string, string>? metadata) =>
        metadata is not null && metadata.TryGetValue(TlsMetadataKey, out var value) ? value : null;
}
