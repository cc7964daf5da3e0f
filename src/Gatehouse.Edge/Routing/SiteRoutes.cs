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
/// after every change. When the sites change, only the changed ones are routed again (all of them when the store
/// mirror does not name them, see <see cref="MirrorSnapshot{T}.ChangedKeys"/>); YARP picks up the new config through
/// its change token.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The reload signals are cancellation sources whose tokens YARP holds past any point where this class could dispose them; they never allocate a wait handle, so there is nothing to release.")]
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

    private static readonly IReadOnlyList<RouteConfig> EdgeRoutes = [EdgeRoute];

    private static readonly ClusterConfig UnassignedCluster = new() { ClusterId = UnassignedClusterId, Destinations = new Dictionary<string, DestinationConfig>() };

    /// <summary>The shortest time between two reloads of YARP's config while sites keep changing.</summary>
    public static readonly TimeSpan DefaultReloadInterval = TimeSpan.FromMilliseconds(50);

    /// <summary>The longest: however slow a reload (thousands of sites on a busy core), a changed cluster is never
    /// waited for longer than this.</summary>
    public static readonly TimeSpan MaxReloadInterval = TimeSpan.FromSeconds(1);

    /// <summary>While sites keep changing, the time between two reloads is at least this many times what the last
    /// reload took, so reloading takes at most about a tenth of a core whatever the number of sites.</summary>
    private const int ReloadCostFactor = 10;

    private readonly TimeProvider _time;
    private readonly TimeSpan _reloadInterval;
    private readonly Lock _reloadLock = new();
    private CancellationTokenSource _reloadSignal = new(); // cancelled to make YARP reload; the snapshots since share it
    private long _lastReload;
    private TimeSpan _interval; // between reloads while changes keep coming: _reloadInterval, or more when reloads are slow
    private bool _reloadScheduled;
    private volatile Snapshot _current;

    /// <summary>Routes with no sites. YARP is told of a change of clusters at once, and then at most once per
    /// <paramref name="reloadInterval"/> (default <see cref="DefaultReloadInterval"/>) while they keep changing, or
    /// once per ten times the last reload's duration when that is longer (up to <see cref="MaxReloadInterval"/>): each
    /// reload validates and compares every cluster, so a stream of new sites would otherwise cost time quadratic in the
    /// number of sites. The host table changes at once; a request for a site whose cluster YARP has not loaded yet gets
    /// 503 (see <see cref="EdgeMiddleware.RouteToSite"/>).</summary>
    public SiteRoutes(TimeProvider? time = null, TimeSpan? reloadInterval = null)
    {
        _time = time ?? TimeProvider.System;
        _reloadInterval = reloadInterval ?? DefaultReloadInterval;
        _interval = _reloadInterval;
        _lastReload = _time.GetTimestamp() - (long)(_reloadInterval.TotalSeconds * _time.TimestampFrequency);
        _current = new([UnassignedCluster], new(StringComparer.Ordinal), new HostTable<RoutedSite>([]), _reloadSignal);
    }

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

    /// <summary>The time between two reloads while clusters keep changing: the configured interval, or ten times what
    /// the last reload took when that is longer.</summary>
    internal TimeSpan ReloadSpacing
    {
        get
        {
            lock (_reloadLock)
            {
                return _interval;
            }
        }
    }

    /// <summary>Finds the re-encrypt site whose cluster is <paramref name="clusterId"/> (the site id), for the client
    /// factory that sets up its backend TLS.</summary>
    internal bool TryGetReencryptSite(string clusterId, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out SiteDefinition site)
    {
        site = _current.Sites.TryGetValue(clusterId, out var routed) && routed.Definition.Mode == SiteMode.Reencrypt ? routed.Definition : null;
        return site is not null;
    }

    /// <summary>Swaps in clusters and the host table for a snapshot of sites: only the sites it names as changed
    /// when it names them (and the table allows), otherwise all of them. YARP reloads when the clusters changed.</summary>
    public void Apply(MirrorSnapshot<SiteDefinition> snapshot)
    {
        CancellationTokenSource? reload;
        lock (_reloadLock)
        {
            var previous = _current;
            var next = (snapshot.ChangedKeys is { } changed ? ApplyChanges(previous, snapshot, changed, _reloadSignal) : null)
                ?? Rebuild(previous, snapshot, _reloadSignal);
            _current = next;
            reload = next.ClustersChanged ? TakeReloadSignal() : null;
        }

        Reload(reload);
    }

    /// <summary>Cancels <paramref name="signal"/>, on which YARP reloads its config in its change callback on this
    /// thread, and spaces the next reloads by what that took.</summary>
    private void Reload(CancellationTokenSource? signal)
    {
        if (signal is null)
        {
            return;
        }

        var start = _time.GetTimestamp();
        signal.Cancel();
        var took = _time.GetElapsedTime(start);
        lock (_reloadLock)
        {
            _interval = TimeSpan.FromTicks(Math.Clamp(took.Ticks * ReloadCostFactor, _reloadInterval.Ticks, Math.Max(_reloadInterval.Ticks, MaxReloadInterval.Ticks)));
        }
    }

    /// <summary>Under <see cref="_reloadLock"/>: the signal to cancel now for YARP to reload (the current snapshot then
    /// carries a fresh one), or null when the last reload was less than the interval ago and one is scheduled.</summary>
    private CancellationTokenSource? TakeReloadSignal()
    {
        if (_reloadScheduled)
        {
            return null; // the scheduled reload picks up this change too
        }

        var since = _time.GetElapsedTime(_lastReload);
        if (since < _interval)
        {
            _reloadScheduled = true;
            _ = ReloadLaterAsync(_interval - since);
            return null;
        }

        var fired = _reloadSignal;
        _reloadSignal = new CancellationTokenSource();
        _current = _current.WithReloadSignal(_reloadSignal);
        _lastReload = _time.GetTimestamp();
        return fired;
    }

    private async Task ReloadLaterAsync(TimeSpan delay)
    {
        await Task.Delay(delay, _time).ConfigureAwait(false);
        CancellationTokenSource? reload;
        lock (_reloadLock)
        {
            _reloadScheduled = false;
            reload = TakeReloadSignal();
        }

        Reload(reload);
    }

    private static Snapshot Rebuild(Snapshot previous, MirrorSnapshot<SiteDefinition> snapshot, CancellationTokenSource reloadSignal)
    {
        var sites = new Dictionary<string, RoutedSite>(snapshot.Items.Count, StringComparer.Ordinal);
        var clusters = new List<ClusterConfig>(snapshot.Items.Count + 1) { UnassignedCluster };
        var hosts = new List<KeyValuePair<string, RoutedSite>>(snapshot.Items.Count);
        foreach (var (_, item) in snapshot.Items)
        {
            if (Route(item.Value, previous.Sites.GetValueOrDefault(item.Value.Id)) is not { } routed)
            {
                continue;
            }

            sites[routed.Definition.Id] = routed;
            if (routed.Cluster is { } cluster)
            {
                clusters.Add(cluster);
            }

            hosts.AddRange(HostsOf(routed));
        }

        return new Snapshot(clusters, sites, new HostTable<RoutedSite>(hosts), reloadSignal)
        {
            ClustersChanged = clusters.Count != previous.Clusters.Count || clusters.Where((cluster, i) => !ReferenceEquals(cluster, previous.Clusters[i])).Any(),
        };
    }

    /// <summary>The previous routes with the changed sites replaced; null when only a rebuild gives the right routes
    /// (a site is not at its id's key, or host names are claimed twice).</summary>
    private static Snapshot? ApplyChanges(Snapshot previous, MirrorSnapshot<SiteDefinition> snapshot, IReadOnlyCollection<string> changedKeys, CancellationTokenSource reloadSignal)
    {
        var clustersChanged = false;
        var sites = new Dictionary<string, RoutedSite>(previous.Sites, StringComparer.Ordinal);
        var released = new List<KeyValuePair<string, RoutedSite>>();
        var claimed = new List<KeyValuePair<string, RoutedSite>>();
        foreach (var key in changedKeys)
        {
            var id = StoreKeys.IdOf(key, StoreKeys.SitesPrefix);
            var site = snapshot.Items.TryGetValue(key, out var item) ? item.Value : null;
            if (site is not null && site.Id != id)
            {
                return null;
            }

            if (sites.Remove(id, out var known))
            {
                released.AddRange(HostsOf(known));
            }

            var cluster = known?.Cluster;
            if (site is not null && Route(site, known) is { } routed)
            {
                sites[id] = routed;
                claimed.AddRange(HostsOf(routed));
                clustersChanged |= !ReferenceEquals(routed.Cluster, cluster);
            }
            else
            {
                clustersChanged |= cluster is not null;
            }
        }

        if (previous.Hosts.With(released, claimed) is not { } hosts)
        {
            return null;
        }

        var clusters = new List<ClusterConfig>(sites.Count + 1) { UnassignedCluster };
        foreach (var routed in sites.Values)
        {
            if (routed.Cluster is { } cluster)
            {
                clusters.Add(cluster);
            }
        }

        return new Snapshot(clusters, sites, hosts, reloadSignal) { ClustersChanged = clustersChanged };
    }

    /// <summary>How the edge serves one site: a passthrough site gets the backends the SNI gate relays to (kept from
    /// <paramref name="known"/> when unchanged, so their state survives), any other a YARP cluster (the same instance
    /// when its backends did not change, which YARP sees as unchanged at once). Null when a passthrough site's
    /// backends are invalid: backends are validated before they are stored, and a record written around the validator
    /// is not served rather than allowed to stop every other site's routing.</summary>
    private static RoutedSite? Route(SiteDefinition site, RoutedSite? known)
    {
        if (site.Mode == SiteMode.Passthrough)
        {
            var relayed = known?.Passthrough;
            if (relayed is null || !relayed.Definition.SameAs(site))
            {
                try
                {
                    relayed = new PassthroughSite(site);
                }
                catch (ArgumentException)
                {
                    return null;
                }
            }

            return new RoutedSite(site, relayed);
        }

        var health = BackendHealth.ConfigOf(site.HealthCheck);
        var metadata = BackendHealth.MetadataOf(site);
        var cluster = known?.Cluster;
        if (cluster is null || !SameBackends(cluster, site, metadata) || !Equals(cluster.HealthCheck, health) || !BackendHealth.SameMetadata(cluster.Metadata, metadata))
        {
            var destinations = new Dictionary<string, DestinationConfig>(StringComparer.Ordinal);
            for (var i = 0; i < site.Backends.Count; i++)
            {
                destinations[BackendHealth.DestinationId(i, metadata)] = new DestinationConfig { Address = site.Backends[i] };
            }

            cluster = new ClusterConfig { ClusterId = site.Id, LoadBalancingPolicy = LoadBalancingPolicies.RoundRobin, Destinations = destinations, HealthCheck = health, Metadata = metadata };
        }

        return new RoutedSite(site, null) { Cluster = cluster };
    }

    private static IEnumerable<KeyValuePair<string, RoutedSite>> HostsOf(RoutedSite routed) =>
        routed.Definition.Hosts.Select(host => KeyValuePair.Create(host, routed));

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

    /// <summary>One set of routes. YARP reloads when <paramref name="reloadSignal"/> is cancelled; the snapshots made
    /// between two reloads share it. It is never disposed: YARP may still hold its token.</summary>
    private sealed class Snapshot(IReadOnlyList<ClusterConfig> clusters, Dictionary<string, RoutedSite> sites, HostTable<RoutedSite> hosts, CancellationTokenSource reloadSignal) : IProxyConfig
    {
        public IReadOnlyList<RouteConfig> Routes => EdgeRoutes;

        public IReadOnlyList<ClusterConfig> Clusters { get; } = clusters;

        public IChangeToken ChangeToken { get; } = new CancellationChangeToken(reloadSignal.Token);

        /// <summary>The sites served, by id (= cluster id).</summary>
        public Dictionary<string, RoutedSite> Sites { get; } = sites;

        public HostTable<RoutedSite> Hosts { get; } = hosts;

        /// <summary>Whether a cluster was added, removed or replaced since the snapshot this one was made from.</summary>
        public bool ClustersChanged { get; init; }

        public Snapshot WithReloadSignal(CancellationTokenSource signal) => new(Clusters, Sites, Hosts, signal) { ClustersChanged = ClustersChanged };
    }
}

/// <summary>A site as the edge finds it by name: its definition and, for a passthrough site, the backends the SNI
/// gate relays to. The mode switch happens on <see cref="SiteDefinition.Mode"/> (see <c>SniGate</c>).</summary>
public sealed class RoutedSite(SiteDefinition definition, PassthroughSite? passthrough)
{
    public SiteDefinition Definition { get; } = definition;

    /// <summary>Set when the site is a passthrough site.</summary>
    public PassthroughSite? Passthrough { get; } = passthrough;

    /// <summary>The site's YARP cluster, when the site is not a passthrough site.</summary>
    internal ClusterConfig? Cluster { get; init; }
}
