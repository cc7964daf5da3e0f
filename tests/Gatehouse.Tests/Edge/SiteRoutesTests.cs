using System.Collections.Immutable;
using Gatehouse.Edge.Routing;
using Gatehouse.Sites;
using Gatehouse.Storage;
using Microsoft.Extensions.Time.Testing;

namespace Gatehouse.Tests.Edge;

public sealed class SiteRoutesTests
{
    private readonly FakeTimeProvider _time = new();

    [Fact]
    public void Apply_ClustersChangingInABurst_YarpReloadsAtOnce_ThenAtMostOncePerInterval()
    {
        var interval = TimeSpan.FromMilliseconds(50);
        var routes = new SiteRoutes(_time, interval);
        var first = routes.GetConfig().ChangeToken;
        routes.Apply(Snapshot(Site("a.test")));
        Assert.True(first.HasChanged); // a lone change reloads at once

        var second = routes.GetConfig().ChangeToken;
        routes.Apply(Snapshot(Site("a.test"), Site("b.test")) with { ChangedKeys = [StoreKeys.Site("b.test")] });
        routes.Apply(Snapshot(Site("a.test"), Site("b.test"), Site("c.test")) with { ChangedKeys = [StoreKeys.Site("c.test")] });
        Assert.False(second.HasChanged);
        Assert.True(routes.TryMatchSite("c.test", out _)); // the host table and the clusters YARP will read are current
        Assert.Equal(4, routes.GetConfig().Clusters.Count);

        _time.Advance(interval);
        Assert.True(SpinWait.SpinUntil(() => second.HasChanged, TimeSpan.FromSeconds(10))); // one reload for both
        var third = routes.GetConfig().ChangeToken;
        Assert.False(third.HasChanged);

        // Changes that leave every cluster as it was (a passthrough site; another name for a site) reload nothing.
        _time.Advance(interval);
        routes.Apply(Snapshot(Site("a.test") with { Hosts = ["a.test", "www.a.test"] }, Site("b.test"), Site("c.test"), Site("p.test", SiteMode.Passthrough, "tcp://127.0.0.1:9"))
            with { ChangedKeys = [StoreKeys.Site("a.test"), StoreKeys.Site("p.test")] });
        _time.Advance(interval);
        Assert.True(routes.TryMatchSite("www.a.test", out _));
        Assert.False(third.HasChanged);

        // A removed site's cluster is a change.
        routes.Apply(Snapshot(Site("a.test"), Site("b.test")) with { ChangedKeys = [StoreKeys.Site("c.test"), StoreKeys.Site("p.test")] });
        Assert.True(third.HasChanged);
    }

    [Fact]
    public void Apply_SlowReloads_SpaceTheNextOnesByTenTimesWhatTheLastTook()
    {
        var interval = TimeSpan.FromMilliseconds(50);
        var routes = new SiteRoutes(_time, interval);
        var reloadTakes = TimeSpan.FromMilliseconds(20);
        var reloads = 0;
        void ReloadLikeYarp(object? state)
        {
            // YARP reloads in the change callback, on the thread that cancelled, and then listens to the new config.
            Interlocked.Increment(ref reloads);
            _time.Advance(reloadTakes);
            routes.GetConfig().ChangeToken.RegisterChangeCallback(ReloadLikeYarp, null);
        }

        routes.GetConfig().ChangeToken.RegisterChangeCallback(ReloadLikeYarp, null);
        routes.Apply(Snapshot(Site("a.test")));
        Assert.Equal(1, reloads); // a lone change reloads at once, however slow the reloads
        Assert.Equal(TimeSpan.FromMilliseconds(200), routes.ReloadSpacing); // ten times what it took

        routes.Apply(Snapshot(Site("a.test"), Site("b.test")) with { ChangedKeys = [StoreKeys.Site("b.test")] });
        Assert.Equal(1, reloads); // 20 ms after the last reload began

        // The scheduled reload is fast: once it has run, the spacing is back to the configured interval.
        reloadTakes = TimeSpan.Zero;
        _time.Advance(TimeSpan.FromMilliseconds(180));
        Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref reloads) == 2 && routes.ReloadSpacing == interval, TimeSpan.FromSeconds(10)));

        _time.Advance(TimeSpan.FromSeconds(1));
        routes.Apply(Snapshot(Site("a.test"), Site("b.test"), Site("c.test")) with { ChangedKeys = [StoreKeys.Site("c.test")] });
        Assert.Equal(3, reloads);
        routes.Apply(Snapshot(Site("a.test"), Site("b.test"), Site("c.test"), Site("d.test")) with { ChangedKeys = [StoreKeys.Site("d.test")] });
        _time.Advance(interval);
        Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref reloads) == 4, TimeSpan.FromSeconds(10)));
        Assert.Equal(5, routes.GetConfig().Clusters.Count);
    }

    [Fact]
    public void Apply_SnapshotWithChangedKeys_RoutesOnlyThose_AndEndsWhereARebuildEnds()
    {
        var routes = new SiteRoutes(_time);
        var kept = Site("kept.test");
        var relayed = Site("relayed.test", SiteMode.Passthrough, "tcp://127.0.0.1:9");
        var dropped = Site("dropped.test");
        var changed = Site("changed.test");
        var secure = Site("secure.test", SiteMode.Reencrypt, "https://127.0.0.1:9");
        routes.Apply(Snapshot(kept, relayed, dropped, changed, secure));
        var keptCluster = ClusterOf(routes, "kept.test");
        Assert.True(routes.TryMatchRoute("relayed.test", out var relayedBefore));
        Assert.True(routes.TryMatchRoute("kept.test", out var keptBefore));
        var changeToken = routes.GetConfig().ChangeToken;

        var after = Snapshot(kept, relayed, changed with { Backends = ["http://127.0.0.1:10", "http://127.0.0.1:11"] }, secure, Site("added.test") with { Hosts = ["added.test", "*.added.test"] }) with
        {
            ChangedKeys = [StoreKeys.Site("dropped.test"), StoreKeys.Site("changed.test"), StoreKeys.Site("added.test")],
        };
        routes.Apply(after);

        Assert.False(changeToken.HasChanged); // YARP reloaded for the first snapshot just now
        _time.Advance(SiteRoutes.DefaultReloadInterval);
        Assert.True(SpinWait.SpinUntil(() => changeToken.HasChanged, TimeSpan.FromSeconds(10)));
        Assert.True(routes.TryMatchRoute("kept.test", out var keptAfter));
        Assert.Same(keptBefore, keptAfter); // not routed again: only the changed sites were
        Assert.Same(keptCluster, ClusterOf(routes, "kept.test")); // YARP sees an unchanged site's cluster as unchanged
        Assert.True(routes.TryMatchRoute("relayed.test", out var relayedAfter));
        Assert.Same(relayedBefore.Passthrough, relayedAfter.Passthrough); // its backends' state is kept
        Assert.False(routes.TryMatchSite("dropped.test", out _));
        Assert.Equal(2, ClusterOf(routes, "changed.test").Destinations!.Count);
        Assert.True(routes.TryMatchSite("www.added.test", out var wildcard));
        Assert.Equal("added.test", wildcard.Id);
        Assert.True(routes.TryGetReencryptSite("secure.test", out _));
        Assert.False(routes.TryGetReencryptSite("kept.test", out _));

        var rebuilt = new SiteRoutes();
        rebuilt.Apply(after with { ChangedKeys = null });
        AssertSameRoutes(rebuilt, routes, "kept.test", "relayed.test", "dropped.test", "changed.test", "secure.test", "added.test", "x.added.test");
    }

    [Fact]
    public void Apply_ChangedSiteClaimsAnotherSitesName_RoutesAsARebuildWould_UntilTheClaimIsReleased()
    {
        var routes = new SiteRoutes();
        var first = Site("a.test") with { Hosts = ["a.test", "shared.test"] };
        routes.Apply(Snapshot(first));

        var second = Site("b.test") with { Hosts = ["b.test", "shared.test"] };
        var claimed = Snapshot(first, second) with { ChangedKeys = [StoreKeys.Site("b.test")] };
        routes.Apply(claimed);
        var rebuilt = new SiteRoutes();
        rebuilt.Apply(claimed with { ChangedKeys = null });
        AssertSameRoutes(rebuilt, routes, "a.test", "b.test", "shared.test");

        var released = Snapshot(first, second with { Hosts = ["b.test"] }) with { ChangedKeys = [StoreKeys.Site("b.test")] };
        routes.Apply(released);
        Assert.True(routes.TryMatchSite("shared.test", out var holder));
        Assert.Equal("a.test", holder.Id);
    }

    [Fact]
    public void Apply_InvalidPassthroughBackends_LeaveThatSiteOut_AndRouteTheOthers()
    {
        var routes = new SiteRoutes();
        routes.Apply(Snapshot(Site("ok.test")));
        var broken = Site("broken.test", SiteMode.Passthrough, "not a backend");
        routes.Apply(Snapshot(Site("ok.test"), broken) with { ChangedKeys = [StoreKeys.Site("broken.test")] });

        Assert.False(routes.TryMatchSite("broken.test", out _));
        Assert.True(routes.TryMatchSite("ok.test", out _));
    }

    private static void AssertSameRoutes(SiteRoutes expected, SiteRoutes actual, params string[] hosts)
    {
        foreach (var host in hosts)
        {
            Assert.Equal(expected.TryMatchRoute(host, out var want), actual.TryMatchRoute(host, out var got));
            Assert.Equal(want?.Definition, got?.Definition);
            Assert.Equal(want?.Passthrough is null, got?.Passthrough is null);
        }

        Assert.Equal(Describe(expected), Describe(actual));
    }

    private static string[] Describe(SiteRoutes routes) =>
        routes.GetConfig().Clusters
            .Select(c => $"{c.ClusterId}: {string.Join(", ", c.Destinations!.OrderBy(d => d.Key, StringComparer.Ordinal).Select(d => $"{d.Key}={d.Value.Address}"))}")
            .Order(StringComparer.Ordinal)
            .ToArray();

    private static Yarp.ReverseProxy.Configuration.ClusterConfig ClusterOf(SiteRoutes routes, string id) =>
        Assert.Single(routes.GetConfig().Clusters, c => c.ClusterId == id);

    private static SiteDefinition Site(string host, SiteMode mode = SiteMode.Offload, string backend = "http://127.0.0.1:9") =>
        new() { Id = host, Hosts = [host], Backends = [backend], Mode = mode };

    private static MirrorSnapshot<SiteDefinition> Snapshot(params SiteDefinition[] sites) =>
        new(ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal, sites.Select(s => KeyValuePair.Create(StoreKeys.Site(s.Id), new MirrorItem<SiteDefinition>(s, 1)))), 1);
}
