using System.Net;
using System.Text;
using Gatehouse.Edge.Tls;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Forwarder;

namespace Gatehouse.Edge.Routing;

/// <summary>Request-level rules of the HTTPS listener, around YARP.</summary>
public static class EdgeMiddleware
{
    private static readonly byte[] MisdirectedBody = Encoding.UTF8.GetBytes("421 Misdirected Request: this connection's certificate is not for that host.\n");

    /// <summary>
    /// RFC 9110 §15.5.20: a request whose Host belongs to another site than the one whose certificate this
    /// connection negotiated (or to no site) gets 421, so connection reuse cannot reach a site the client did not
    /// authenticate.
    /// </summary>
    public static async Task RequireHostOfNegotiatedSite(HttpContext context, RequestDelegate next, SiteRoutes routes)
    {
        var served = context.Features.Get<ServedCertificateFeature>();
        if (served is null || !routes.TryMatchSite(context.Request.Host.Host, out var site) || !string.Equals(site.Id, served.Certificate.Id, StringComparison.Ordinal))
        {
            context.Response.StatusCode = StatusCodes.Status421MisdirectedRequest;
            context.Response.ContentType = "text/plain; charset=utf-8";
            await context.Response.Body.WriteAsync(MisdirectedBody, context.RequestAborted);
            return;
        }

        await next(context);
    }

    /// <summary>
    /// First in YARP's proxy pipeline: moves the request from the edge's one route to its site's cluster, found by
    /// host in the same table as the misdirected-request check (see <see cref="SiteRoutes"/> for why not by ASP.NET
    /// routing). A site whose cluster YARP has not loaded yet stays on the cluster without destinations (503).
    /// </summary>
    public static Task RouteToSite(HttpContext context, RequestDelegate next, SiteRoutes routes, IProxyStateLookup proxyState)
    {
        if (routes.TryMatchSite(context.Request.Host.Host, out var site) && proxyState.TryGetCluster(site.Id, out var cluster))
        {
            context.ReassignProxyRequest(cluster);
        }

        return next(context);
    }

    /// <summary>Gives YARP's bare 502/504 a short page that says what happened (never backend details).</summary>
    public static async Task DescribeProxyErrors(HttpContext context, RequestDelegate next)
    {
        await next(context);
        var error = context.Features.Get<IForwarderErrorFeature>();
        if (error is null || context.Response.HasStarted)
        {
            return;
        }

        var (status, text) = error.Error switch
        {
            ForwarderError.RequestTimedOut => (StatusCodes.Status504GatewayTimeout, "504 Gateway Timeout: the site's backend did not answer in time."),
            ForwarderError.NoAvailableDestinations => (StatusCodes.Status503ServiceUnavailable, "503 Service Unavailable: the site has no backend available."),
            // The client's request body broke off or was malformed (a bad chunk): the client's fault, not the backend's.
            ForwarderError.RequestBodyClient or ForwarderError.RequestBodyCanceled => (StatusCodes.Status400BadRequest, "400 Bad Request: the request body could not be read."),
            _ => (StatusCodes.Status502BadGateway, "502 Bad Gateway: the site's backend could not be reached."),
        };
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/html; charset=utf-8";
        await context.Response.WriteAsync($"<!doctype html><title>{status}</title><h1>{WebUtility.HtmlEncode(text)}</h1>\n", context.RequestAborted);
    }
}
