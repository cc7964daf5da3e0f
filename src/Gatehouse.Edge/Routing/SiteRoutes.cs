using Gatehouse.Edge.Passthrough;
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

    private volatile Snapshot _current = new([EdgeRoute], [UnassignedCluster], new(StringComparer.Ordinal), new HostTable<RoutedSite>([]), new(StringComparer.Ordinal), new CancellationTokenSource()) { Reencrypt = new(StringComparer.Ordinal) };

    /// <summary>Finds the site that serves <paramref name="host"/>.</summary>
    public bool TryMatchSite(ReadOnlySpan<char> host, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out SiteDefinition site)
    {
        var found = _current.Hosts.TryMatch(host, out var routed);
        site = routed?.Definition;
        return found;
    }

    /// <summary>Finds the site that serves <paramref name="serverName"/> with what the edge needs to handle its
    /// connections (exact name first, then a one-level wildcard, over the sites of every mode at once).</summary>
    public bool TryMatchRoute(ReadOnlySpan<char> serverName, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out RoutedSite site) =>
        _current.Hosts.TryMatch(serverName, out site);

    public IProxyConfig GetConfig() => _current;

    /// <summary>Finds the re-encrypt site whose cluster is <paramref name="clusterId"/> (the site id), for the client
    /// factory that sets up its backend TLS.</summary>
    internal bool TryGetReencryptSite(string clusterId, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out SiteDefinition site) =>
        _current.Reencrypt.TryGetValue(clusterId, out site);

    /// <summary>Builds clusters and the host table for a snapshot of sites and swaps them in.</summary>
    public void Apply(MirrorSnapshot<SiteDefinition> snapshot)
    {
        var clusters = new List<ClusterConfig>(snapshot.Items.Count + 1) { UnassignedCluster };
        var hosts = new List<KeyValuePair<string, RoutedSite>>();
        var previous = _current;
        var passthrough = new Dictionary<string, PassthroughSite>(StringComparer.Ordinal);
        var byId = new Dictionary<string, ClusterConfig>(snapshot.Items.Count, StringComparer.Ordinal);
        var reencrypt = new Dictionary<string, SiteDefinition>(StringComparer.Ordinal);
        foreach (var (_, item) in snapshot.Items)
        {
            var site = item.Value;
            if (site.Mode == SiteMode.Passthrough)
            {
                // No YARP cluster: the SNI gate relays its connections. An unchanged site keeps its backends' state.
                if (!previous.Passthrough.TryGetValue(site.Id, out var relayed) || !relayed.Definition.SameAs(site))
                {
                    // Backends are validated before they are stored; a record written around the validator is not
                    // served rather than allowed to stop every other site's routing.
                    try
                    {
                        relayed = new PassthroughSite(site);
                    }
                    catch (ArgumentException)
                    {
                        continue;
                    }
                }

                passthrough[site.Id] = relayed;
                var route = new RoutedSite(site, relayed);
                foreach (var host in site.Hosts)
                {
                    hosts.Add(new(host, route));
                }

                continue;
            }

            // A site whose backends did not change keeps its cluster config instance, which YARP sees as unchanged
            // at once.
            var health = BackendHealth.ConfigOf(site.HealthCheck);
            var metadata = BackendHealth.MetadataOf(site);
            if (site.Mode == SiteMode.Reencrypt)
            {
                reencrypt[site.Id] = site;
            }

            if (!previous.ClustersById.TryGetValue(site.Id, out var cluster) || !SameBackends(cluster, site, metadata)
                || !Equals(cluster.HealthCheck, health) || !BackendHealth.SameMetadata(cluster.Metadata, metadata))
            {
                var destinations = new Dictionary<string, DestinationConfig>(StringComparer.Ordinal);
                for (var i = 0; i < site.Backends.Count; i++)
                {
                    destinations[BackendHealth.DestinationId(i, metadata)] = new DestinationConfig { Address = site.Backends[i] };
                }

                cluster = new ClusterConfig { ClusterId = site.Id, LoadBalancingPolicy = LoadBalancingPolicies.RoundRobin, Destinations = destinations, HealthCheck = health, Metadata = metadata };
            }

            clusters.Add(cluster);
            byId[site.Id] = cluster;
            var offload = new RoutedSite(site, null);
            foreach (var host in site.Hosts)
            {
                hosts.Add(new(host, offload));
            }
        }

        _current = new Snapshot([EdgeRoute], clusters, byId, new HostTable<RoutedSite>(hosts), passthrough, new CancellationTokenSource()) { Reencrypt = reencrypt };
        previous.Changed.Cancel();
    }

    private static bool SameBackends(ClusterConfig cluster, SiteDefinition site, IReadOnlyDictionary<string, string>? metadata)
    {
        var destinations = cluster.Destinations!;
        if (destinations.Count != site.Backends.Count)
        {
            return false;
        }

        for (var i = 0; i < site.Backends.Count; i++)
        {
            if (!destinations.TryGetValue(BackendHealth.DestinationId(i, metadata), out var destination) || destination.Address != site.Backends[i])
            {
                return false;
            }
        }

        return true;
    }

    private sealed class Snapshot(IReadOnlyList<RouteConfig> routes, IReadOnlyList<ClusterConfig> clusters, Dictionary<string, ClusterConfig> clustersById, HostTable<RoutedSite> hosts, Dictionary<string, PassthroughSite> passthrough, CancellationTokenSource changed) : IProxyConfig
    {
        public Dictionary<string, ClusterConfig> ClustersById { get; } = clustersById;

        public IReadOnlyList<RouteConfig> Routes { get; } = routes;

        public IReadOnlyList<ClusterConfig> Clusters { get; } = clusters;

        public IChangeToken ChangeToken { get; } = new CancellationChangeToken(changed.Token);

        public HostTable<RoutedSite> Hosts { get; } = hosts;

        public Dictionary<string, PassthroughSite> Passthrough { get; } = passthrough;

        public CancellationTokenSource Changed { get; } = changed;

        /// <summary>The re-encrypt sites by id (= cluster id).</summary>
        public required Dictionary<string, SiteDefinition> Reencrypt { get; init; }
    }
}

/// <summary>A site as the edge finds it by name: its definition and, for a passthrough site, the backends the SNI
/// gate relays to. The mode switch happens on <see cref="SiteDefinition.Mode"/> (see <c>SniGate</c>).</summary>
public sealed class RoutedSite(SiteDefinition definition, PassthroughSite? passthrough)
{
    public SiteDefinition Definition { get; } = definition;

    /// <summary>Set when the site is a passthrough site.</summary>
    public PassthroughSite? Passthrough { get; } = passthrough;
}
