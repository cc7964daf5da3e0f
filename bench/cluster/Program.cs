using System.Diagnostics;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.IntegrationTests.Infrastructure;
using Gatehouse.Storage.Etcd;

// bench/cluster: hot reload across Gatehouse instances over one etcd cluster. Starts a 3-member etcd cluster (the
// integration tests' EtcdCluster: /usr/bin/etcd, heartbeat 50 ms, election timeout 500 ms) and INSTANCES (3)
// `dotnet gatehouse.dll serve` processes on one prefix, adds SITES (20) sites through instance 1's admin API (local CA,
// the default issuer) and waits until every instance serves every site. Then, one at a time, COUNT (100) certificate
// updates: renewal asked through the admin API of instance (k mod INSTANCES) (POST /v1/certificates/HOST/renew makes
// the certificate due; the instance that takes its lock issues a new one and writes it to etcd). t0 = the moment the
// record with the new serial reaches the bench's own etcd watch; t_i = the end of the first full TLS handshake (SNI =
// the name, no resumption) on instance i that presents the new serial, probed every POLL_MS (2) ms from t0 on each
// instance at once, at most UPDATE_LIMIT (10) s (then a miss). Interleaved with those, NGINX_REPS (50) reloads of the peer: nginx
// with the same names, one site's certificate files rewritten, t0 = `nginx -s reload` started, same probes; and
// NGINX_HUP_REPS (30) more with `kill -HUP` to the master instead (the same signal without `-s reload`'s own parse of the
// config). WARMUP (10) updates and NGINX_WARMUP (5) reloads first, reported apart. Prints a markdown report; writes one
// CSV line per sample to --samples.
// Usage: gatehouse-bench-cluster --gatehouse PATH/gatehouse.dll --work DIR [--instances 3] [--sites 20] [--count 100]
//        [--warmup 10] [--nginx-reps 50] [--nginx-hup-reps 30] [--nginx-warmup 5] [--update-limit 10] [--poll-ms 2]
//        [--pids FILE] [--samples FILE]
var arguments = Arguments.Parse(args);
var gatehouseDll = Path.GetFullPath(arguments.Require("--gatehouse"));
var work = Path.GetFullPath(arguments.Require("--work"));
var instanceCount = arguments.Int("--instances", 3);
var siteCount = arguments.Int("--sites", 20);
var count = arguments.Int("--count", 100);
var warmup = arguments.Int("--warmup", 10);
var nginxReps = arguments.Int("--nginx-reps", 50);
var nginxHupReps = arguments.Int("--nginx-hup-reps", 30);
var nginxWarmup = arguments.Int("--nginx-warmup", 5);
var updateLimit = TimeSpan.FromSeconds(arguments.Int("--update-limit", 10));
var pollInterval = TimeSpan.FromMilliseconds(arguments.Int("--poll-ms", 2));
Directory.CreateDirectory(work);
var started = new StartedProcesses(arguments.Get("--pids", Path.Combine(work, "pids")));
var samplesFile = arguments.Get("--samples", Path.Combine(work, "samples.csv"));
const string Prefix = "/bench";
var readyTimeout = TimeSpan.FromSeconds(90);
if (instanceCount < 1 || siteCount < 1 || count < 1 || nginxReps < 0 || nginxHupReps < 0)
{
    throw new ArgumentException("--instances, --sites and --count must be at least 1, --nginx-reps and --nginx-hup-reps at least 0.");
}

var setupClock = Stopwatch.StartNew();
Console.Error.WriteLine("cluster: starting a 3-member etcd cluster...");
await using var etcd = await EtcdCluster.StartAsync(3, parentDirectory: work);
var etcdPids = ProcStats.Children(Environment.ProcessId, "etcd");
started.Add(etcdPids, "etcd");

Console.Error.WriteLine($"cluster: starting {instanceCount} gatehouse serve instances on etcd prefix {Prefix}...");
await using var cluster = await GatehouseCluster.StartAsync(gatehouseDll, work, instanceCount, etcd.Endpoints, Prefix, started, readyTimeout);
await using var store = EtcdStore.Open(new EtcdStoreOptions { Endpoints = etcd.Endpoints, KeyPrefix = Prefix, RequestTimeout = TimeSpan.FromSeconds(5) });
await using var watch = await CertificateWatch.StartAsync(store);

var hosts = Enumerable.Range(1, siteCount).Select(i => $"s{i}.cluster.bench.test").ToList();
Console.Error.WriteLine($"cluster: adding {siteCount} sites through instance 1 and waiting until every instance serves them...");
foreach (var host in hosts)
{
    await cluster.Members[0].Admin.AddSiteAsync(host);
}

await ReloadBench.WaitServedEverywhereAsync(cluster, watch, hosts, TimeSpan.FromSeconds(60));

Console.Error.WriteLine($"cluster: starting nginx with the same {siteCount} names...");
await using var nginx = await NginxPeer.StartAsync(work, hosts, started, TimeSpan.FromSeconds(30));
var setupSeconds = setupClock.Elapsed.TotalSeconds;

var bench = new ReloadBench(cluster, watch, nginx, hosts, updateLimit, pollInterval);
Console.Error.WriteLine($"cluster: warm-up: {warmup} certificate updates, {nginxWarmup} nginx reloads...");
var warmupUpdates = new List<UpdateSample>();
for (var k = 0; k < warmup; k++)
{
    warmupUpdates.Add(await bench.UpdateAsync(k, isWarmup: true));
}

var warmupReloads = new List<ReloadSample>();
for (var k = 0; k < nginxWarmup; k++)
{
    warmupReloads.Add(await bench.ReloadNginxAsync(k, isWarmup: true, signalOnly: false));
}

Console.Error.WriteLine($"cluster: measuring {count} certificate updates, interleaved with {nginxReps} + {nginxHupReps} nginx reloads...");
var cpu = CpuReading.Take(cluster, etcdPids);
var measureStart = DateTimeOffset.UtcNow;
var measureClock = Stopwatch.StartNew();
var updates = new List<UpdateSample>();
var reloads = new List<ReloadSample>();
for (var k = 0; k < count; k++)
{
    updates.Add(await bench.UpdateAsync(k, isWarmup: false));
    while (reloads.Count(r => !r.SignalOnly) < (long)(k + 1) * nginxReps / count)
    {
        reloads.Add(await bench.ReloadNginxAsync(reloads.Count, isWarmup: false, signalOnly: false));
    }

    while (reloads.Count(r => r.SignalOnly) < (long)(k + 1) * nginxHupReps / count)
    {
        reloads.Add(await bench.ReloadNginxAsync(reloads.Count, isWarmup: false, signalOnly: true));
    }
}

var measureSeconds = measureClock.Elapsed.TotalSeconds;
var measureEnd = DateTimeOffset.UtcNow;
var cpuUsed = CpuReading.Take(cluster, etcdPids).Minus(cpu);
Console.Error.WriteLine($"cluster: measured in {measureSeconds:0.0} s (set-up took {setupSeconds:0.0} s)");

var logs = cluster.Members.Select(m => m.Process.Events()).ToList();
var report = new ClusterReport(cluster.Members.Count, hosts.Count, updateLimit, pollInterval, logs);
await File.WriteAllTextAsync(samplesFile, report.Csv([.. warmupUpdates, .. updates], [.. warmupReloads, .. reloads]));
Console.WriteLine(report.Markdown(updates, reloads, warmupUpdates, warmupReloads, cpuUsed, (measureStart, measureEnd), setupSeconds));
return updates.All(u => u.Served.All(s => s.Ms is not null)) && reloads.All(r => r.Served.Ms is not null) ? 0 : 1;

/// <summary>When the first probe presenting the expected serial ended (ms after t0; null: not within the limit), how
/// many probes it took, how long that presenting handshake took, and how long one more handshake right after it took
/// (the same certificate, now prepared: the difference is what the first handshake with a new certificate costs).</summary>
internal sealed record Served(double? Ms, int Probes, double HandshakeMs, double? NextHandshakeMs);

/// <summary>One Gatehouse certificate update: renewal asked through instance <c>Asked</c> (1-based) at <c>AskUtc</c>
/// (wall clock, to line up with the instances' logs); <c>PostMs</c> is how long POST /v1/certificates/HOST/renew took
/// to answer, <c>RecordMs</c> asked → the new record reached the bench's watch (t0; null when it did not within the
/// limit), <c>RecordUtc</c> the wall clock at t0, <c>Served</c> per instance t_i − t0.</summary>
internal sealed record UpdateSample(int Index, bool Warmup, string Host, int Asked, string? OldSerial, string? NewSerial, DateTimeOffset AskUtc, double PostMs, double? RecordMs, DateTimeOffset? RecordUtc, Served[] Served);

/// <summary>One nginx reload: t0 = `nginx -s reload` (or, <c>SignalOnly</c>, `kill -HUP MASTER`) started.
/// <c>CommandMs</c>: how long that command ran (it signals the master and exits); <c>Settled</c>: whether the old worker was gone within 3 s after (the next reload
/// starts from one worker).</summary>
internal sealed record ReloadSample(int Index, bool Warmup, bool SignalOnly, string Host, string Serial, double CommandMs, int ExitCode, Served Served, bool Settled);

/// <summary>CPU seconds (utime + stime, all threads) of each Gatehouse instance, of the etcd members together, and of
/// the bench.</summary>
internal sealed record CpuReading(double[] Instances, double Etcd, double Bench)
{
    public static CpuReading Take(GatehouseCluster cluster, int[] etcdPids) => new(
        [.. cluster.Members.Select(m => ProcStats.CpuSeconds(m.Process.Pid))],
        etcdPids.Sum(ProcStats.CpuSeconds),
        Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds);

    public CpuReading Minus(CpuReading before) => new([.. Instances.Zip(before.Instances, (a, b) => a - b)], Etcd - before.Etcd, Bench - before.Bench);
}

internal sealed class ReloadBench(GatehouseCluster cluster, CertificateWatch watch, NginxPeer nginx, List<string> hosts, TimeSpan limit, TimeSpan pollInterval)
{
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(2);

    /// <summary>Waits until every instance presents, for every host, the serial its record in etcd holds.</summary>
    public static async Task WaitServedEverywhereAsync(GatehouseCluster cluster, CertificateWatch watch, List<string> hosts, TimeSpan limit)
    {
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(cluster.Members.Select(async member =>
        {
            foreach (var host in hosts)
            {
                while (watch.Serial(host) is not { } serial || await TlsProbe.ServedSerialAsync(member.HttpsPort, host, cluster.Root, ProbeTimeout) != serial)
                {
                    if (clock.Elapsed > limit)
                    {
                        throw new TimeoutException($"instance {member.Number} did not serve {host} (record serial {watch.Serial(host) ?? "none"}) within {limit.TotalSeconds:0} s; last log lines:\n{string.Join('\n', member.Process.Tail(20))}");
                    }

                    await Task.Delay(20);
                }
            }
        }));
    }

    /// <summary>Update <paramref name="index"/>: renewal of host (index mod sites) asked through instance (index mod
    /// instances), then each instance probed from t0 until it presents the new serial.</summary>
    public async Task<UpdateSample> UpdateAsync(int index, bool isWarmup)
    {
        var host = hosts[index % hosts.Count];
        var asked = cluster.Members[index % cluster.Members.Count];
        var oldSerial = watch.Serial(host);
        var arrival = watch.Expect(host, oldSerial); // before asking: the record may land before the POST is answered
        var askUtc = DateTimeOffset.UtcNow;
        var askTicks = Stopwatch.GetTimestamp();
        await asked.Admin.RenewAsync(host);
        var postMs = Stopwatch.GetElapsedTime(askTicks).TotalMilliseconds;
        RecordArrival record;
        try
        {
            record = await arrival.WaitAsync(limit);
        }
        catch (TimeoutException)
        {
            Console.Error.WriteLine($"cluster: update {index}: no new record for {host} within {limit.TotalSeconds:0} s");
            return new UpdateSample(index, isWarmup, host, asked.Number, oldSerial, null, askUtc, postMs, null, null, [.. cluster.Members.Select(_ => new Served(null, 0, 0, null))]);
        }

        var served = await Task.WhenAll(cluster.Members.Select(m => FirstServedAsync(m.HttpsPort, host, cluster.Root, record.Serial, record.Ticks)));
        foreach (var (member, result) in cluster.Members.Zip(served).Where(p => p.Second.Ms is null))
        {
            Console.Error.WriteLine($"cluster: update {index}: instance {member.Number} did not present serial {record.Serial} for {host} within {limit.TotalSeconds:0} s");
        }

        return new UpdateSample(index, isWarmup, host, asked.Number, oldSerial, record.Serial, askUtc, postMs,
            Stopwatch.GetElapsedTime(askTicks, record.Ticks).TotalMilliseconds, record.Utc, served);
    }

    /// <summary>nginx reload <paramref name="index"/>: a new certificate for host (index mod sites) written over its
    /// files, `nginx -s reload` or `kill -HUP` started (t0), nginx probed until it presents the new serial.</summary>
    public async Task<ReloadSample> ReloadNginxAsync(int index, bool isWarmup, bool signalOnly)
    {
        var host = hosts[index % hosts.Count];
        var serial = nginx.WriteNewCertificate(host);
        var start = Stopwatch.GetTimestamp();
        using var reload = nginx.StartReload(signalOnly);
        var served = FirstServedAsync(nginx.Port, host, nginx.Root, serial, start);
        await reload.WaitForExitAsync();
        var commandMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        var result = await served;
        if (reload.ExitCode != 0 || result.Ms is null)
        {
            Console.Error.WriteLine($"cluster: nginx reload {index}: exit code {reload.ExitCode}, new certificate {(result.Ms is null ? "not presented" : "presented")}; error log:\n{nginx.ErrorLogTail(5)}");
        }

        var settled = await nginx.WaitSettledAsync(TimeSpan.FromSeconds(3));
        return new ReloadSample(index, isWarmup, signalOnly, host, serial, commandMs, reload.ExitCode, result, settled);
    }

    /// <summary>Fresh TLS handshakes to 127.0.0.1:<paramref name="port"/> (SNI <paramref name="host"/>) every poll
    /// interval until one presents <paramref name="serial"/>, at most the limit after <paramref name="from"/>.</summary>
    private async Task<Served> FirstServedAsync(int port, string host, X509Certificate2 root, string serial, long from)
    {
        var probes = 0;
        while (true)
        {
            probes++;
            var probeStart = Stopwatch.GetTimestamp();
            var presented = await TlsProbe.ServedSerialAsync(port, host, root, ProbeTimeout);
            var end = Stopwatch.GetTimestamp();
            if (string.Equals(presented, serial, StringComparison.OrdinalIgnoreCase))
            {
                var nextStart = Stopwatch.GetTimestamp();
                var again = await TlsProbe.ServedSerialAsync(port, host, root, ProbeTimeout);
                var nextMs = again is null ? (double?)null : Stopwatch.GetElapsedTime(nextStart).TotalMilliseconds;
                return new Served(Stopwatch.GetElapsedTime(from, end).TotalMilliseconds, probes, Stopwatch.GetElapsedTime(probeStart, end).TotalMilliseconds, nextMs);
            }

            if (Stopwatch.GetElapsedTime(from) >= limit)
            {
                return new Served(null, probes, 0, null);
            }

            await Task.Delay(pollInterval);
        }
    }
}
