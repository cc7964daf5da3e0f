using System.Runtime.CompilerServices;
using Gatehouse.Sites;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace Gatehouse.Edge.Routing;

/// <summary>
/// Passive failure detection: a backend whose last <see cref="FailuresInARow"/> requests failed on the way to it
/// (no connection, TLS refused or unverified, no response headers in time, the backend breaking a body) is out for
/// the site's <c>reactivateAfter</c>, then tried again. YARP's TransportFailureRate policy is not used: it waits for
/// 10 requests per backend and keeps a backend out for at least its 60 s window whatever the site says, and it
/// counts requests the client aborted (dotnet/yarp#2062), so a client could take a healthy backend out.
/// Registered as a YARP passive policy (so cluster configs naming it validate) but called by
/// <see cref="InvokeAsync"/>, not by YARP's passive middleware: that one reports to the route's cluster, and every
/// request here starts on the one edge route and is moved to its site's cluster (<see cref="EdgeMiddleware.RouteToSite"/>).
/// </summary>
internal sealed class BackendFailurePolicy(IDestinationHealthUpdater updater) : IPassiveHealthCheckPolicy
{
    public const string PolicyName = "GatehouseFailures";

    /// <summary>Failed requests in a row that take a backend out.</summary>
    public const int FailuresInARow = 3;

    private readonly ConditionalWeakTable<DestinationState, StrongBox<int>> _failures = new();

    public string Name => PolicyName;

    public void RequestProxied(HttpContext context, ClusterState cluster, DestinationState destination)
    {
        var error = context.Features.Get<IForwarderErrorFeature>()?.Error ?? ForwarderError.None;
        var count = _failures.GetValue(destination, static _ => new StrongBox<int>());
        if (!IsBackendFailure(error))
        {
            // A success, or a failure that was the client's doing, says nothing bad about the backend.
            if (error == ForwarderError.None)
            {
                Interlocked.Exchange(ref count.Value, 0);
            }

            return;
        }

        if (Interlocked.Increment(ref count.Value) >= FailuresInARow)
        {
            Interlocked.Exchange(ref count.Value, 0);
            var reactivateAfter = cluster.Model.Config.HealthCheck?.Passive?.ReactivationPeriod ?? new BackendHealthCheck().ReactivateAfter;
            updater.SetPassive(cluster, destination, DestinationHealth.Unhealthy, reactivateAfter);
        }
    }

    /// <summary>In the proxy pipeline instead of <c>UsePassiveHealthChecks</c>: reports each proxied request to this
    /// policy with the state of the cluster the request was moved to.</summary>
    public async Task InvokeAsync(HttpContext context, RequestDelegate next, IProxyStateLookup proxyState)
    {
        await next(context);
        var proxy = context.GetReverseProxyFeature();
        if (proxy.ProxiedDestination is { } destination && proxy.Cluster.Config.HealthCheck?.Passive?.Enabled == true
            && proxyState.TryGetCluster(proxy.Cluster.Config.ClusterId, out var cluster))
        {
            RequestProxied(context, cluster, destination);
        }
    }

    private static bool IsBackendFailure(ForwarderError error) => error is ForwarderError.Request or ForwarderError.RequestTimedOut
        or ForwarderError.ResponseHeaders or ForwarderError.RequestBodyDestination or ForwarderError.ResponseBodyDestination
        or ForwarderError.UpgradeRequestDestination or ForwarderError.UpgradeResponseDestination;
}
