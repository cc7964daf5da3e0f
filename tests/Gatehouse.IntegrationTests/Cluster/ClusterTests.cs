using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Certificates;
using Gatehouse.IntegrationTests.Infrastructure;
using Gatehouse.Keys;
using Gatehouse.Storage;
using Gatehouse.Storage.Etcd;
using Xunit.Abstractions;

namespace Gatehouse.IntegrationTests.Cluster;

/// <summary>
/// Three Gatehouse processes over one real 3-member etcd cluster, issuing from Pebble (5% badNonce) through HTTP-01.
/// Pebble's validation requests reach the instances through a relay that stands for DNS load balancing and sends each
/// validation to an instance other than the one that ordered. Each test starts its own etcd cluster, Pebble and
/// instances, and breaks something: an instance, an etcd member, the etcd leader, all of etcd, one instance's link.
/// Lock TTL 3 s.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly string _prefix = "/cluster-" + Guid.NewGuid().ToString("N")[..8];
    private readonly GatehouseInstance[] _instances = [GatehouseInstance.Create(), GatehouseInstance.Create(), GatehouseInstance.Create()];
    private EtcdCluster _etcd = null!;
    private Backend _backend = null!;
    private HttpRelay _relay = null!;
    private Pebble _pebble = null!;
    private X509ChainPolicy _trust = null!;
    private readonly HashSet<GatehouseInstance> _outOfRotation = [];
    private int _routed;

    public async Task InitializeAsync()
    {
        _etcd = await EtcdCluster.StartAsync(3);
        _backend = await Backend.StartAsync("cluster");
        _relay = new HttpRelay(RouteAwayFromOrderer);
        _pebble = await Pebble.StartAsync(new PebbleOptions { HttpPort = _relay.Port, TlsAlpnPort = Ports.Free() });
        _trust = GatehouseInstance.TrustOnly(await _pebble.GetRootAsync());
    }

    /// <summary>Writes each instance's config (instance i reaches etcd through <paramref name="endpointsOf"/>(i), all
    /// members by default) and starts them: the first alone, then the others with its master key and admin token.</summary>
    private async Task StartInstancesAsync(Func<int, IEnumerable<int>>? endpointsOf = null)
    {
        for (var i = 0; i < _instances.Length; i++)
        {
            var members = (endpointsOf?.Invoke(i) ?? [0, 1, 2]).Select(m => _etcd.Endpoints[m].GetLeftPart(UriPartial.Authority));
            await File.WriteAllTextAsync(Path.Combine(_instances[i].Directory, "pebble-ca.pem"), _pebble.TransportRoot.ExportCertificatePem());
            _instances[i].WriteConfig("[]", $$$"""
                store: {type: etcd, etcd: {endpoints: [{{{string.Join(", ", members)}}}], prefix: {{{_prefix}}}, timeout: 2s}}
                certificates: {lockTtl: 3s}
                issuers:
                  pebble: {type: acme, directory: "{{{_pebble.DirectoryUrl}}}", caBundle: pebble-ca.pem, acceptTerms: true, challenges: [http-01]}
                """);
        }

        await _instances[0].StartProcessAsync();
        foreach (var other in _instances.Skip(1))
        {
            Directory.CreateDirectory(other.DataDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            File.Copy(Path.Combine(_instances[0].DataDirectory, "master.key"), Path.Combine(other.DataDirectory, "master.key"));
            File.Copy(Path.Combine(_instances[0].DataDirectory, "admin.token"), Path.Combine(other.DataDirectory, "admin.token"));
        }

        await Task.WhenAll(_instances.Skip(1).Select(i => i.StartProcessAsync()));
    }

    public async Task DisposeAsync()
    {
        foreach (var instance in _instances)
        {
            await instance.DisposeAsync();
        }

        await _pebble.DisposeAsync();
        await _relay.DisposeAsync();
        await _backend.DisposeAsync();
        await _etcd.DisposeAsync();
    }

    [Fact]
    public async Task ThreeInstancesRaceForTwentyNewCertificates_EachIsOrderedOnce_ValidatedElsewhere_ServedByAll_KeysStayEncryptedInEtcd()
    {
        await StartInstancesAsync();
        var hosts = Enumerable.Range(0, 20).Select(i => $"r{i}.cluster.test").ToArray();

        // Each site is added through one instance; all three see it at once and race for its lock.
        await Task.WhenAll(hosts.Select((host, i) => AddSiteAsync(_instances[i % 3], host)));
        foreach (var instance in _instances)
        {
            await instance.WaitUntilServedAsync(hosts, _trust, Deadline);
        }

        // Pebble received exactly one order per certificate, and exactly one instance ordered each.
        Assert.Equal(20, OrdersAtPebble());
        foreach (var host in hosts)
        {
            var orderers = _instances.Where(i => i.LoggedIssuing(host)).ToList();
            Assert.Single(orderers);

            // Every validation of the name reached an instance other than the one that ordered it.
            var routed = _relay.Routed.Where(r => r.Host == host).ToList();
            Assert.NotEmpty(routed);
            Assert.All(routed, r => Assert.NotEqual(orderers[0].HttpPort, r.Port));
        }

        output.WriteLine($"orders per instance: {string.Join(", ", _instances.Select(i => hosts.Count(i.LoggedIssuing)))}");

        // No private key in plaintext in etcd: not in what etcdctl reads, not in any member's data directory (WAL, snapshots, bbolt).
        var scalars = await PrivateScalarsAsync();
        Assert.True(scalars.Count >= 22, $"expected the CA's two keys and 20 leaves, found {scalars.Count}");
        var dump = Path.Combine(_etcd.Directory, "etcdctl-dump");
        Directory.CreateDirectory(dump);
        var get = await _etcd.EtcdctlAsync(["get", "--prefix", _prefix]);
        Assert.Equal(0, get.ExitCode);
        Assert.Contains("/gatehouse/v1/certs/r0.cluster.test", get.StandardOutput, StringComparison.Ordinal);
        await File.WriteAllTextAsync(Path.Combine(dump, "get.txt"), get.StandardOutput);
        var scanner = new KeyMaterialScanner(scalars);
        Assert.Empty(scanner.Scan(dump, except: null));
        await _etcd.StopAllAsync(); // bbolt holds its file locked while a member runs: read the data at rest
        foreach (var directory in _etcd.DataDirectories)
        {
            Assert.Empty(scanner.Scan(directory, except: null));
        }
    }

    [Fact]
    public async Task OrdererKilledMidOrder_AnotherInstanceFinishesWithinTheLockTtlPlusAFewSeconds()
    {
        await StartInstancesAsync();
        const string Host = "killed.cluster.test";
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _relay.Gate = host => host == Host ? Hold(held, release) : Task.CompletedTask;

        await AddSiteAsync(_instances[0], Host);
        await held.Task.WaitAsync(Deadline); // the CA is validating: the order is in flight
        var orderer = Assert.Single(_instances, i => i.LoggedIssuing(Host));
        var clock = Stopwatch.StartNew();
        orderer.Kill();
        _relay.Gate = _ => Task.CompletedTask;
        release.SetResult();

        var survivors = _instances.Where(i => i != orderer).ToList();
        foreach (var survivor in survivors)
        {
            await survivor.WaitForNewLeafAsync(Host, _trust, null, Deadline);
        }

        output.WriteLine($"orderer killed → served by both survivors: {clock.Elapsed.TotalSeconds:F1} s (lock TTL 3 s)");
        Assert.Single(survivors, s => s.LoggedIssuing(Host));
    }

    [Fact]
    public async Task EtcdMemberKilled_ServingAndIssuingGoOn_EtcdLeaderKilledMidOrder_TheOrderCompletes()
    {
        await StartInstancesAsync();
        await AddSiteAsync(_instances[0], "before.cluster.test");
        await ServedByAllAsync("before.cluster.test");

        // One member (not the leader) dies: the other two keep quorum.
        var leader = await _etcd.LeaderIndexAsync();
        var follower = (leader + 1) % 3;
        _etcd.KillMember(follower);
        await AddSiteAsync(_instances[1], "one-down.cluster.test");
        await ServedByAllAsync("one-down.cluster.test", "before.cluster.test");
        await _etcd.StartMemberAsync(follower);
        await _etcd.WaitHealthyAsync();

        // The leader dies while an order is in flight: the cluster elects another, and the order completes.
        const string Host = "leader-killed.cluster.test";
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _relay.Gate = host => host == Host ? Hold(held, release) : Task.CompletedTask;
        await AddSiteAsync(_instances[2], Host);
        await held.Task.WaitAsync(Deadline);
        leader = await _etcd.LeaderIndexAsync();
        _etcd.KillMember(leader);
        _relay.Gate = _ => Task.CompletedTask;
        release.SetResult();
        await ServedByAllAsync(Host, "before.cluster.test", "one-down.cluster.test");
        output.WriteLine($"orders for {Host}: {_instances.Count(i => i.LoggedIssuing(Host))} instance(s) logged issuing");
        await _etcd.StartMemberAsync(leader);
    }

    [Fact]
    public async Task AllEtcdMembersStopped_EveryInstanceKeepsServing_AdminWritesGet503_AndAllCatchUpWhenEtcdReturns()
    {
        await StartInstancesAsync();
        string[] hosts = ["a.cluster.test", "b.cluster.test", "c.cluster.test"];
        await Task.WhenAll(hosts.Select((host, i) => AddSiteAsync(_instances[i], host)));
        await ServedByAllAsync(hosts);
        var serials = await ServedSerialsAsync(hosts);

        await _etcd.StopAllAsync();

        // Handshakes go on with every certificate each instance had (including keys never opened before the outage:
        // the key ring is in memory), and each certificate is the same.
        Assert.Equal(serials, await ServedSerialsAsync(hosts));
        using (var admin = _instances[1].AdminClient())
        {
            using var refused = await admin.PostAsJsonAsync("v1/sites", new { hosts = new[] { "during.cluster.test" }, backends = new[] { _backend.Url }, issuers = new[] { "pebble" } });
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            var body = await refused.Content.ReadAsStringAsync();
            Assert.Contains("The store is unavailable; nothing was changed.", body, StringComparison.Ordinal);
        }

        await _etcd.StartAllAsync();
        await AddSiteAsync(_instances[1], "after.cluster.test");
        await ServedByAllAsync(["after.cluster.test", .. hosts]);
        Assert.Equal(serials, await ServedSerialsAsync(hosts)); // nothing was lost or reissued
    }

    [Fact]
    public async Task InstanceCutOffFromEtcd_StopsOrderingButKeepsServing_AndCatchesUpWhenBack()
    {
        // Instance 2 reaches etcd only through member 2; the others through members 0 and 1.
        await StartInstancesAsync(i => i == 2 ? [2] : [0, 1]);
        await AddSiteAsync(_instances[0], "p1.cluster.test");
        await ServedByAllAsync("p1.cluster.test");
        var serial = (await ServedSerialsAsync(["p1.cluster.test"]))[0];

        // The load balancer's health check takes it out of the CA's way: it cannot see new challenges, so a validation
        // that reached it would fail (and the order be retried after the backoff).
        var cutOff = _instances[2];
        _outOfRotation.Add(cutOff);
        await _etcd.StopMemberAsync(2);
        await AddSiteAsync(_instances[0], "p2.cluster.test");
        foreach (var instance in _instances.Take(2))
        {
            await instance.WaitForNewLeafAsync("p2.cluster.test", _trust, null, Deadline);
        }

        Assert.False(cutOff.LoggedIssuing("p2.cluster.test"));
        using (var tls = await cutOff.HandshakeAsync("p1.cluster.test", trust: _trust))
        {
            Assert.Equal(serial, new X509Certificate2(tls.RemoteCertificate!).SerialNumber);
        }

        // If the cut-off instance was the elected one, it steps down when its lease cannot be kept alive.
        Assert.True(await GatehouseInstance.EventuallyAsync(
            () => Task.FromResult(!LeadsNow(cutOff) && _instances.Take(2).Count(LeadsNow) == 1), Deadline),
            "exactly one connected instance leads");

        await _etcd.StartMemberAsync(2);
        await cutOff.WaitForNewLeafAsync("p2.cluster.test", _trust, null, Deadline);
    }

    private static async Task Hold(TaskCompletionSource held, TaskCompletionSource release)
    {
        held.TrySetResult();
        await release.Task;
    }

    /// <summary>Sends a validation to a running instance that is not ordering the name (the one that ordered when
    /// every running instance did).</summary>
    private int RouteAwayFromOrderer(string host)
    {
        var running = _instances.Where(i => i.IsRunning && !_outOfRotation.Contains(i)).ToList();
        var others = running.Where(i => !i.LoggedIssuing(host)).ToList();
        var pool = others.Count > 0 ? others : running;
        return pool[Interlocked.Increment(ref _routed) % pool.Count].HttpPort;
    }

    private async Task AddSiteAsync(GatehouseInstance through, string host)
    {
        using var admin = through.AdminClient();
        using var created = await admin.PostAsJsonAsync("v1/sites", new { hosts = new[] { host }, backends = new[] { _backend.Url }, issuers = new[] { "pebble" } });
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
    }

    private async Task ServedByAllAsync(params string[] hosts)
    {
        foreach (var instance in _instances.Where(i => i.IsRunning))
        {
            await instance.WaitUntilServedAsync(hosts, _trust, Deadline);
        }
    }

    /// <summary>The serial each instance presents for each host; fails when two instances differ.</summary>
    private async Task<List<string>> ServedSerialsAsync(string[] hosts)
    {
        var serials = new List<string>();
        foreach (var host in hosts)
        {
            var seen = new HashSet<string>();
            foreach (var instance in _instances.Where(i => i.IsRunning))
            {
                await using var tls = await instance.HandshakeAsync(host, trust: _trust);
                seen.Add(new X509Certificate2(tls.RemoteCertificate!).SerialNumber);
            }

            serials.Add(Assert.Single(seen));
        }

        return serials;
    }

    private int OrdersAtPebble() => _pebble.OrdersAdded;

    /// <summary>Whether the instance's last leadership event says it leads.</summary>
    private static bool LeadsNow(GatehouseInstance instance)
    {
        var last = instance.Logs.LastOrDefault(line => line.Contains("leader for /gatehouse/v1/locks/leader/maintenance", StringComparison.Ordinal));
        return last is not null && last.Contains("Elected leader", StringComparison.Ordinal);
    }

    /// <summary>The EC scalars of every key the cluster made (the local CA's and the leaves'), opened with the shared
    /// master key file the way an operator could.</summary>
    private async Task<List<byte[]>> PrivateScalarsAsync()
    {
        await using var store = EtcdStore.Open(new EtcdStoreOptions { Endpoints = _etcd.Endpoints, KeyPrefix = _prefix });
        using var ring = await _instances[0].OpenKeyRingAsync(store);
        var cipher = new EnvelopeCipher(ring);
        var sealedKeys = new List<(string Key, byte[] Sealed)>();
        foreach (var key in new[] { StoreKeys.LocalCaRoot, StoreKeys.LocalCaIntermediate })
        {
            sealedKeys.Add((key, CoreJson.Deserialize<LocalCaRecord>((await store.GetAsync(key))!).SealedKey));
        }

        foreach (var entry in (await store.ListAsync(StoreKeys.CertificatesPrefix)).Entries)
        {
            if (CoreJson.Deserialize<CertificateRecord>(entry).SealedKey is { } sealedKey)
            {
                sealedKeys.Add((entry.Key, sealedKey));
            }
        }

        return KeyMaterialScanner.Scalars(cipher, sealedKeys);
    }
}

/// <summary>The cluster tests run alone: each starts five etcd and Gatehouse processes plus Pebble, and their functional
/// deadlines should not compete with the rest of the suite for two cores.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ClusterCollection
{
    public const string Name = "cluster (runs alone)";
}
