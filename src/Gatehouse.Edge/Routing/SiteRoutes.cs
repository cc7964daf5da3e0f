using Gatehouse.Sites;
using Gatehouse.Storage;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.LoadBalancing;

namespace Gatehouse.Edge.Routing;

/// <summary>
/// Turns the sites in the store into YARP routes and clusters (one of each per site, matched by Host, backends
/// round robin, X-Forwarded-* set from the connection and never trusted from the client), and keeps a host table
/// for the misdirected-request check. Rebuilt when the sites change; YARP picks up the new config through its
/// change token.
/// </summary>
public sealed class SiteRoutes : IProxyConfigProvider
{
    private volatile Snapshot _current = new([], [], new HostTable<SiteDefinition>([]), new CancellationTokenSource());

    /// <summary>Finds the site that serves <paramref name="host"/>.</summary>
    public bool TryMatchSite(ReadOnlySpan<char> host, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out SiteDefinition site) =>
        _current.Hosts.TryMatch(host, out site);

    public IProxyConfig GetConfig() => _current;

    /// <summary>Builds routes for a snapshot of sites and swaps them in.</summary>
    public void Apply(MirrorSnapshot<SiteDefinition> snapshot)
    {
        var routes = new List<RouteConfig>(snapshot.Items.Count);
        var clusters = new List<ClusterConfig>(snapshot.Items.Count);
        var hosts = new List<KeyValuePair<string, SiteDefinition>>();
        foreach (var (_, item) in snapshot.Items)
        {
            var site = item.Value;
            routes.Add(new RouteConfig
            {
                RouteId = site.Id,
                ClusterId = site.Id,
                Match = new RouteMatch { Hosts = [.. site.Hosts], Path = "/{**catch-all}" },
                Transforms =
                [
                    new Dictionary<string, string> { ["X-Forwarded"] = "Set" },
                    new Dictionary<string, string> { ["RequestHeaderRemove"] = "Forwarded" },
                ],
            });

            var destinations = new Dictionary<string, DestinationConfig>(StringComparer.Ordinal);
            for (var i = 0; i < site.Backends.Count; i++)
            {
                destinations[$"backend-{i}"] = new DestinationConfig { Address = site.Backends[i] };
            }

            clusters.Add(new ClusterConfig { ClusterId = site.Id, LoadBalancingPolicy = LoadBalancingPolicies.RoundRobin, Destinations = destinations });
            foreach (var host in site.Hosts)
            {
                hosts.Add(new(host, site));
            }
        }

        var previous = _current;
        _current = new Snapshot(routes, clusters, new HostTable<SiteDefinition>(hosts), new CancellationTokenSource());
        previous.Changed.Cancel();
    }

    private sealed class Snapshot(IReadOnlyList<RouteConfig> routes, IReadOnlyList<ClusterConfig> clusters, HostTable<SiteDefinition> hosts, CancellationTokenSource changed) : IProxyConfig
    {
        public IReadOnlyList<RouteConfig> Routes { get; } = routes;

        public IReadOnlyList<ClusterConfig> Clusters { get; } = clusters;

        public IChangeToken ChangeToken { get; } = new CancellationChangeToken(changed.Token);

        public HostTable<SiteDefinition> Hosts { get; } = hosts;

        public CancellationTokenSource Changed { get; } = changed;
    }
}
