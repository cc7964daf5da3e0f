using System.Collections.Concurrent;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;

namespace Gatehouse.Edge.Routing;

/// <summary>
/// One line per failing backend instead of YARP's warning with a stack trace per request (its forwarder is
/// filtered to Error in the composition root): the site, the backend, what failed. A backend that keeps failing the
/// same way is logged once a minute. TLS failures toward re-encrypt backends were logged where they happened
/// (<see cref="BackendTlsConnector"/>), with the verification reason, and are not repeated here.
/// </summary>
internal sealed class BackendErrorLog(ILogger<BackendErrorLog> logger)
{
    private static readonly TimeSpan RepeatAfter = TimeSpan.FromMinutes(1);
    private readonly ConcurrentDictionary<(string, ForwarderError), DateTime> _logged = new();

    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        await next(context);
        if (context.Features.Get<IForwarderErrorFeature>() is not { } error || error.Error == ForwarderError.NoAvailableDestinations)
        {
            return;
        }

        var proxy = context.GetReverseProxyFeature();
        var backend = proxy.ProxiedDestination?.Model.Config.Address ?? "(none)";
        for (var inner = error.Exception; inner is not null; inner = inner.InnerException)
        {
            if (inner is BackendTlsException)
            {
                return;
            }
        }

        var now = DateTime.UtcNow;
        var key = (backend, error.Error);
        if (_logged.TryGetValue(key, out var last) && now - last < RepeatAfter)
        {
            return;
        }

        _logged[key] = now;
        var reason = error.Exception is null ? "" : Innermost(error.Exception);
        BackendLog.ProxyFailed(logger, proxy.Cluster.Config.ClusterId, backend, error.Error.ToString(), reason);
    }

    private static string Innermost(Exception exception)
    {
        while (exception.InnerException is not null)
        {
            exception = exception.InnerException;
        }

        return exception.Message;
    }
}
