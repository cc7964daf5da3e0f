using Gatehouse.Keys;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;

namespace Gatehouse.Edge.Routing;

/// <summary>
/// YARP's client factory with the re-encrypt sites' TLS: a cluster whose metadata carries
/// <see cref="TlsMetadataKey"/> gets a handler whose connections go through a <see cref="BackendTlsConnector"/>
/// made from its site's settings. The metadata value is a fingerprint of those settings, so a change of CA bundle,
/// names or client certificate makes a new client (new connections, verified anew) without a restart, and any other
/// change keeps the pooled connections.
/// <para>
/// Every other cluster (offload sites: plain settings, no TLS of ours) shares one client. YARP would give each
/// cluster its own <see cref="SocketsHttpHandler"/>, which with 10,000 sites is 10,000 handlers and connection pools
/// (memory, and no connection reuse between sites on the same backend); a handler pools per backend endpoint anyway.
/// YARP never disposes a replaced client, so sharing one is safe.
/// </para>
/// </summary>
internal sealed class BackendHttpClientFactory(SiteRoutes routes, EnvelopeCipher cipher, ILoggerFactory loggers)
    : ForwarderHttpClientFactory(loggers.CreateLogger<ForwarderHttpClientFactory>()), IForwarderHttpClientFactory
{
    private readonly Lock _sharedLock = new();
    private HttpMessageInvoker? _shared;
    /// <summary>The cluster metadata key whose value fingerprints a re-encrypt site's backend TLS settings.</summary>
    public const string TlsMetadataKey = "gatehouse.backendTls";

    private readonly ILogger _logger = loggers.CreateLogger<BackendTlsConnector>();

    HttpMessageInvoker IForwarderHttpClientFactory.CreateClient(ForwarderHttpClientContext context)
    {
        if (Fingerprint(context.NewMetadata) is not null || !HttpClientConfig.Empty.Equals(context.NewConfig))
        {
            return CreateClient(context);
        }

        lock (_sharedLock)
        {
            return _shared ??= CreateClient(new ForwarderHttpClientContext { ClusterId = context.ClusterId, OldConfig = HttpClientConfig.Empty, NewConfig = context.NewConfig });
        }
    }

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
