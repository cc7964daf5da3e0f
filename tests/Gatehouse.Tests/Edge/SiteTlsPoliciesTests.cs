using System.Collections.Immutable;
using Gatehouse.Edge.Tls;
using Gatehouse.Sites;
using Gatehouse.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gatehouse.Tests.Edge;

public sealed class SiteTlsPoliciesTests
{
    private static readonly HstsPolicy Hsts = new() { Enabled = true, MaxAgeSeconds = 600 };

    [Fact]
    public void Apply_SnapshotWithChangedKeys_CompilesOnlyThose_AndEndsWhereARebuildEnds()
    {
        var policies = new SiteTlsPolicies(NullLogger<SiteTlsPolicies>.Instance);
        var kept = Site("kept.test", Hsts);
        var dropped = Site("dropped.test", Hsts);
        var changed = Site("changed.test", Hsts);
        policies.Apply(Snapshot([kept, dropped, changed, Site("plain.test", null)]));
        Assert.True(policies.TryGet("kept.test", out var keptPolicy));
        Assert.False(policies.TryGet("plain.test", out _)); // neither client auth nor HSTS: nothing to keep

        var longer = Hsts with { MaxAgeSeconds = 1200 };
        var after = Snapshot([kept, changed with { Hsts = longer }, Site("added.test", Hsts), Site("plain.test", null)]) with
        {
            ChangedKeys = [StoreKeys.Site("dropped.test"), StoreKeys.Site("changed.test"), StoreKeys.Site("added.test")],
        };
        policies.Apply(after);

        Assert.True(policies.TryGet("kept.test", out var keptNow));
        Assert.Same(keptPolicy, keptNow);
        Assert.False(policies.TryGet("dropped.test", out _));
        Assert.True(policies.TryGet("changed.test", out var changedNow));
        Assert.Equal(longer, changedNow.Hsts);
        Assert.True(policies.TryGet("added.test", out _));

        var rebuilt = new SiteTlsPolicies(NullLogger<SiteTlsPolicies>.Instance);
        rebuilt.Apply(after with { ChangedKeys = null });
        foreach (var id in new[] { "kept.test", "dropped.test", "changed.test", "added.test", "plain.test" })
        {
            Assert.Equal(rebuilt.TryGet(id, out var expected), policies.TryGet(id, out var actual));
            Assert.Equal(expected?.Hsts, actual?.Hsts);
        }
    }

    private static SiteDefinition Site(string host, HstsPolicy? hsts) =>
        new() { Id = host, Hosts = [host], Backends = ["http://127.0.0.1:9"], Hsts = hsts ?? HstsPolicy.Off };

    private static MirrorSnapshot<SiteDefinition> Snapshot(IEnumerable<SiteDefinition> sites) =>
        new(ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal, sites.Select(s => KeyValuePair.Create(StoreKeys.Site(s.Id), new MirrorItem<SiteDefinition>(s, 1)))), 1);
}
