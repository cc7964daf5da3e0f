using Gatehouse.Sites;
using Gatehouse.Storage;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.LoadBalancing;

namespace Gatehouse.Edge.Routing;

/// <summary>
/// Turns the sites in the store into YARP config (a cluster per site, backends round robin) and keeps a host table,
/// which both the misdirected-request check and <see cref="EdgeMiddleware.RouteToSite"/> use. YARP has one route
/// for all sites (X-Forwarded-* set from the connection and never trusted from the client); the cluster is chosen
/// by host in the proxy pipeline, not by ASP.NET routing, whose host matching builds its matcher in time quadratic
/// in the number of hosts (about 8 s for 10,000 sites, more than 5 minutes for 100,000), on the first request and
/// after every change. Rebuilt when the sites change; YARP picks up the new config through its change token.
/// </summary>
public sealed class SiteRoutes : IProxyConfigProvider
{
    /// <summary>The cluster requests start on until their site's is assigned: no destinations, so 503. Site ids are
    /// host names, which never start with '_'.</summary>
    internal const string UnassignedClusterId = "_unassigned";

    /// <summary>The route every request on the HTTPS edge takes; the same instance in every snapshot, so a change of
    /// sites never rebuilds ASP.NET's endpoints.</summary>
    private static readonly RouteConfig EdgeRoute = new()
    {
        RouteId = "_edge",
        ClusterId = UnassignedClusterId,
        Match = new RouteMatch { Path = "/{**catch-all}" },
        Transforms =
        [
            new Dictionary<string, string> { ["X-Forwarded"] = "Set" },
            new Dictionary<string, string> { ["RequestHeaderRemove"] = "Forwarded" },
        ],
    };

    private static readonly ClusterConfig UnassignedCluster = new() { ClusterId = UnassignedClusterId, Destinations = new Dictionary<string, DestinationConfig>() };

    private volatile Snapshot _current = new([EdgeRoute], [UnassignedCluster], new Dictionary<string, ClusterConfig>(StringComparer.Ordinal), new HostTable<SiteDefinition>([]), new CancellationTokenSource());

    /// <summary>Finds the site that serves <paramref name="host"/>.</summary>
    public bool TryMatchSite(ReadOnlySpan<char> host, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out SiteDefinition site) =>
        _current.Hosts.TryMatch(host, out site);

    public IProxyConfig GetConfig() => _current;

    /// <summary>Builds clusters and the host table for a snapshot of sites and swaps them in. A site whose backends
    /// did not change keeps its <see cref="ClusterConfig"/> instance, which YARP recognises as unchanged at once.</summary>
    public void Apply(MirrorSnapshot<SiteDefinition> snapshot)
    {
        var previous = _current;
        var clusters = new List<ClusterConfig>(snapshot.Items.Count + 1) { UnassignedCluster };
        var byId = new Dictionary<string, ClusterConfig>(snapshot.Items.Count, StringComparer.Ordinal);
        var hosts = new List<KeyValuePair<string, SiteDefinition>>();
        foreach (var (_, item) in snapshot.Items)
        {
            var site = item.Value;
            if (!previous.ClustersById.TryGetValue(site.Id, out var cluster) || !SameBackends(cluster, site))
            {
                var destinations = new Dictionary<string, DestinationConfig>(StringComparer.Ordinal);
                for (var i = 0; i < site.Backends.Count; i++)
                {
                    destinations[$"backend-{i}"] = new DestinationConfig { Address = site.Backends[i] };
                }

                cluster = new ClusterConfig { ClusterId = site.Id, LoadBalancingPolicy = LoadBalancingPolicies.RoundRobin, Destinations = destinations };
            }

            clusters.Add(cluster);
            byId[site.Id] = cluster;
            foreach (var host in site.Hosts)
            {
                hosts.Add(new(host, site));
            }
        }

        _current = new Snapshot([EdgeRoute], clusters, byId, new HostTable<SiteDefinition>(hosts), new CancellationTokenSource());
        previous.Changed.Cancel();
    }

    private static bool SameBackends(ClusterConfig cluster, SiteDefinition site)
    {
        var destinations = cluster.Destinations!;
        if (destinations.Count != site.Backends.Count)
        {
            return false;
        }

        for (var i = 0; i < site.Backends.Count; i++)
        {
            if (!destinations.TryGetValue($"backend-{i}", out var destination) || destination.Address != site.Backends[i])
            {
                return false;
            }
        }

        return true;
    }

    private sealed class Snapshot(IReadOnlyList<RouteConfig> routes, IReadOnlyList<ClusterConfig> clusters, Dictionary<string, ClusterConfig> clustersById, HostTable<SiteDefinition> hosts, CancellationTokenSource changed) : IProxyConfig
    {
        public Dictionary<string, ClusterConfig> ClustersById { get; } = clustersById;

        public IReadOnlyList<RouteConfig> Routes { get; } = routes;

        public IReadOnlyList<ClusterConfig> Clusters { get; } = clusters;

        public IChangeToken ChangeToken { get; } = new CancellationChangeToken(changed.Token);

        public HostTable<SiteDefinition> Hosts { get; } = hosts;

        public CancellationTokenSource Changed { get; } = changed;
    }
}
