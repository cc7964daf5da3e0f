using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.IntegrationTests.Infrastructure;

// bench/acme: starts Pebble 2.4.0 (PEBBLE_VA_NOSLEEP=1, its default 5% badNonce) and pebble-challtestsrv with the
// integration tests' fixture, then `dotnet gatehouse.dll serve` with one ACME issuer whose HTTP-01 answers the edge
// gives on its HTTP port, and issues single-name certificates through the admin API in phases:
//   seq   one site at a time: add, wait until the edge presents the Pebble-signed certificate, next;
//   conc  CONCURRENCY sites outstanding at a time (a closed loop of CONCURRENCY clients doing what seq does);
//   burst all sites added at once, the certificate manager's maxConcurrentIssuances bounding the issuances.
// Latency = POST /v1/sites sent → first TLS handshake (SNI = the name) in which the edge presents a certificate that
// chains to Pebble's issuing root. Gatehouse's JSON log (events 3001 Issuing, 7009 ACME order done in N s, 3002 Issued)
// splits it. Per phase: wall time, certificates/minute, CPU seconds of Gatehouse and of Pebble (+ challtestsrv) from
// /proc/PID/stat, and Gatehouse's peak RSS (VmHWM, reset through /proc/PID/clear_refs at the start of each phase).
// Usage: gatehouse-bench-acme --gatehouse PATH/gatehouse.dll --work DIR [--count 100] [--concurrency 10]
//        [--warmup 50] [--warmup-rounds 3] [--warmup-max-rounds 8] [--settle-limit 30] [--phases seq,conc,burst] [--max-concurrent-issuances 10]
//        [--phase-limit 120] [--certificate-limit 30] [--nonce-reject PERCENT] [--relay 1] [--samples FILE]
var arguments = Arguments.Parse(args);
var gatehouseDll = Path.GetFullPath(arguments.Require("--gatehouse"));
var work = Path.GetFullPath(arguments.Require("--work"));
var count = arguments.Int("--count", 100);
var concurrency = arguments.Int("--concurrency", 10);
var warmup = arguments.Int("--warmup", 50);
var warmupRounds = arguments.Int("--warmup-rounds", 3);
var warmupMaxRounds = Math.Max(warmupRounds, arguments.Int("--warmup-max-rounds", 8));
var settleLimit = arguments.Int("--settle-limit", 30);
var maxConcurrentIssuances = arguments.Int("--max-concurrent-issuances", 10);
var phases = arguments.Get("--phases", "seq,conc,burst").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
var phaseLimit = TimeSpan.FromSeconds(arguments.Int("--phase-limit", 120));
var certificateLimit = TimeSpan.FromSeconds(arguments.Int("--certificate-limit", 30));
int? nonceReject = arguments.Get("--nonce-reject", "") is { Length: > 0 } reject ? int.Parse(reject, CultureInfo.InvariantCulture) : null;
var samplesFile = arguments.Get("--samples", Path.Combine(work, "samples.csv"));
var relay = arguments.Int("--relay", 1) != 0;
// --gatehouse-cpu N runs Gatehouse on core N alone (taskset); run starts this bench, and so Pebble and challtestsrv,
// on --ca-cpu M. Each core's busy time is then read from /proc/stat per phase: which side limits the rate.
int? gatehouseCpuCore = arguments.Get("--gatehouse-cpu", "") is { Length: > 0 } g ? int.Parse(g, CultureInfo.InvariantCulture) : null;
int? caCpuCore = arguments.Get("--ca-cpu", "") is { Length: > 0 } c ? int.Parse(c, CultureInfo.InvariantCulture) : null;
Cores? cores = gatehouseCpuCore is { } gc && caCpuCore is { } cc ? new Cores(gc, cc) : null;
foreach (var phase in phases)
{
    if (phase is not ("seq" or "conc" or "burst"))
    {
        throw new ArgumentException($"--phases: '{phase}' is not seq, conc or burst.");
    }
}

Directory.CreateDirectory(work);
var httpsPort = Ports.Free();
var httpPort = Ports.Free();
var adminPort = Ports.Free();
Console.Error.WriteLine("acme: starting Pebble and pebble-challtestsrv...");

// With --relay 1 (default) Pebble's HTTP-01 requests to the edge and Gatehouse's ACME requests to Pebble pass through
// relays in this process that time each exchange: how long Pebble takes to answer, how long the edge takes.
await using var validationRelay = relay ? new TimingRelay(httpPort) : null;
await using var pebble = await Pebble.StartAsync(new PebbleOptions { HttpPort = validationRelay?.Port ?? httpPort, TlsAlpnPort = httpsPort, NonceRejectPercent = nonceReject });
await using var acmeRelay = relay ? new TimingRelay(pebble.AcmePort) : null;
var directoryUrl = acmeRelay is null ? pebble.DirectoryUrl : new Uri($"https://localhost:{acmeRelay.Port}/dir"); // Pebble's URLs follow the Host header
var bundle = Path.Combine(work, "pebble-transport-ca.pem");
await File.WriteAllTextAsync(bundle, pebble.TransportRoot.ExportCertificatePem());
var config = Path.Combine(work, "gatehouse.yaml");
await File.WriteAllTextAsync(config, $"""
    dataDirectory: ./data
    edge: {"{"}address: 127.0.0.1, httpsPort: {httpsPort}, httpPort: {httpPort}{"}"}
    admin: {"{"}address: 127.0.0.1, port: {adminPort}{"}"}
    issuers:
      pebble: {"{"}type: acme, directory: "{directoryUrl}", caBundle: "{bundle}", acceptTerms: true, challenges: [http-01]{"}"}
    certificates: {"{"}maxConcurrentIssuances: {maxConcurrentIssuances}{"}"}
    sites: []

    """);

Console.Error.WriteLine("acme: starting gatehouse serve...");
await using var gatehouse = GatehouseProcess.Start(gatehouseDll, work, config, Path.Combine(work, "gatehouse.log"), cores?.Gatehouse.ToString(CultureInfo.InvariantCulture));
using var admin = await AdminClient.ConnectAsync(gatehouse, Path.Combine(work, "data"), adminPort, TimeSpan.FromSeconds(60));
var caPids = ProcStats.Children(Environment.ProcessId, "pebble", "pebble-challtes"); // Pebble and challtestsrv: the fixture starts them; comm is cut at 15 characters
var bench = new Bench(gatehouse, admin, httpsPort, pebble.IssuingRoot, certificateLimit, cores);
var results = new List<PhaseResult>();
// A cold process spends most of its first tens of seconds of CPU in the tiered JIT (a perf profile showed 71% of
// Gatehouse's samples on the ".NET Tiered Compilation" thread in a sequential phase that followed a single warm-up
// round). Call counting for tier 1 only starts once the process has gone a moment without calling a method for the
// first time, and a process limited to one core (taskset here, or a one-CPU cgroup) waits ten times longer (the
// runtime's TC_DelaySingleProcMultiplier: 1 s instead of 100 ms). So each warm-up round is followed by a pause until
// Gatehouse has been idle for two seconds in a row, and rounds go on until two in a row after the cold one agree
// within 10 % on Gatehouse's CPU per certificate (at least --warmup-rounds, at most --warmup-max-rounds): with a fixed two rounds,
// the concurrency-10 phase measured anywhere from 14 to 22 ms per certificate, depending on how far tier-up had got.
// The first (cold) round is reported on its own.
var settle = (Waited: TimeSpan.Zero, LastCores: double.NaN);
var previousCpu = double.NaN;
for (var round = 1; round <= warmupMaxRounds && warmup > 0; round++)
{
    var name = round == 1 ? "warm-up (cold process)" : $"warm-up {round}";
    var how = $"{concurrency} at a time" + (round == 1 ? "; includes ACME account registration and JIT" : "");
    var result = await bench.RunAsync(name, how, "conc", Hosts($"warm{round}", warmup), concurrency, phaseLimit, caPids);
    results.Add(result);
    var settled = await bench.SettleAsync(maxIdleCores: 0.1, quietSeconds: 2, TimeSpan.FromSeconds(settleLimit));
    settle = (settle.Waited + settled.Waited, settled.LastCores);
    Console.Error.WriteLine($"acme: settled after {settled.Waited.TotalSeconds:0.0} s (last second: {settled.LastCores:0.00} cores)");
    var cpu = result.GatehouseCpu / Math.Max(1, result.Samples.Count);
    if (round >= warmupRounds && Math.Abs(cpu - previousCpu) <= 0.1 * previousCpu)
    {
        Console.Error.WriteLine($"acme: warm-up steady after {round} rounds ({1000 * previousCpu:0.0} then {1000 * cpu:0.0} ms of Gatehouse CPU per certificate)");
        break;
    }

    if (round == warmupMaxRounds)
    {
        Console.Error.WriteLine($"acme: warm-up not steady after {round} rounds (last: {1000 * cpu:0.0} ms of Gatehouse CPU per certificate); measuring anyway");
    }

    previousCpu = round == 1 ? double.NaN : cpu; // the cold round is never the reference: its JIT is still to come
}

var seen = new Dictionary<string, int>(StringComparer.Ordinal);
foreach (var phase in phases)
{
    var repeat = seen[phase] = seen.GetValueOrDefault(phase) + 1;
    var suffix = repeat == 1 ? "" : $" #{repeat}";
    var label = repeat == 1 ? phase : phase + repeat.ToString(CultureInfo.InvariantCulture);
    var result = phase switch
    {
        "seq" => await bench.RunAsync("sequential" + suffix, "one site at a time", "seq", Hosts(label, count), 1, phaseLimit, caPids),
        "conc" => await bench.RunAsync($"concurrency {concurrency}{suffix}", $"{concurrency} sites outstanding at a time (closed loop)", "conc", Hosts(label, count), concurrency, phaseLimit, caPids),
        _ => await bench.RunAsync("burst" + suffix, $"all {count} added at once; maxConcurrentIssuances {maxConcurrentIssuances}", "burst", Hosts(label, count), count, phaseLimit, caPids),
    };
    results.Add(result);
}

var idleCores = await bench.IdleCoresAsync(TimeSpan.FromSeconds(3));
var totalCpu = ProcStats.CpuSeconds(gatehouse.Pid);
var lifetimePeak = ProcStats.Memory(gatehouse.Pid).PeakKiB;
var events = gatehouse.Events();
await File.WriteAllTextAsync(samplesFile, Analysis.Csv(results, events));
await File.WriteAllTextAsync(Path.Combine(work, "pebble.log"), pebble.Output);
var wire = acmeRelay is null || validationRelay is null ? null : new WireTimes(acmeRelay.Exchanges(skipPerConnection: 2), validationRelay.Exchanges(skipPerConnection: 0));
Console.WriteLine(Analysis.Report(results, events, wire, new CpuSummary(settle.Waited, settle.LastCores, idleCores, totalCpu), lifetimePeak, concurrency, maxConcurrentIssuances, cores));
return results.All(r => r.Samples.All(s => s.Served is not null) && r.Samples.Count == r.Requested) ? 0 : 1;

static List<string> Hosts(string label, int count) => [.. Enumerable.Range(1, count).Select(i => $"{label[0]}{i}.{label}.bench.test")];

/// <summary>One certificate: when its site was added, when the edge first presented its Pebble certificate.</summary>
internal sealed record Sample(string Phase, string Host, DateTimeOffset AddStart, DateTimeOffset AddDone, DateTimeOffset? Served, string? Serial, int Probes, TimeSpan? ServedHandshake = null)
{
    /// <summary>Gatehouse's CPU seconds since the phase started, read when this one was served (one-at-a-time phases).</summary>
    public double? GatehouseCpuAfter { get; init; }
}

/// <summary>The core Gatehouse runs on alone, and the one Pebble, challtestsrv and this bench share.</summary>
internal sealed record Cores(int Gatehouse, int Ca);

/// <summary>Gatehouse's CPU outside the phases: how long the settling after the warm-up took, its last second, the
/// idle use after the last phase, and the total since the process started.</summary>
internal sealed record CpuSummary(TimeSpan Settled, double SettledCores, double IdleCores, double TotalSeconds);

/// <summary>The exchanges the relays timed: Gatehouse → Pebble (ACME, TLS handshakes left out) and Pebble → edge (HTTP-01).</summary>
internal sealed record WireTimes(List<Exchange> Acme, List<Exchange> Validations);

internal sealed record PhaseResult(
    string Name,
    string How,
    int Requested,
    List<Sample> Samples,
    DateTimeOffset Start,
    DateTimeOffset End,
    double GatehouseCpu,
    double CaCpu,
    double BenchCpu,
    long PeakKiB,
    bool PeakIsPerPhase,
    long RssEndKiB,
    bool StoppedByLimit,
    (double Gatehouse, double Ca)? CoreBusy)
{
    public TimeSpan Wall => End - Start;
}

internal sealed class Bench(GatehouseProcess gatehouse, AdminClient admin, int httpsPort, X509Certificate2 issuingRoot, TimeSpan certificateLimit, Cores? cores)
{
    /// <summary>Between handshake probes before Gatehouse logged "Issued" for the name (a safety net only: the
    /// record is written after that log line, so the certificate cannot be served earlier).</summary>
    private static readonly TimeSpan SlowProbe = TimeSpan.FromSeconds(1);

    /// <summary>Between handshake probes once "Issued" was logged: the resolution of the served time.</summary>
    private static readonly TimeSpan FastProbe = TimeSpan.FromMilliseconds(2);

    public async Task<PhaseResult> RunAsync(string name, string how, string mode, List<string> hosts, int outstanding, TimeSpan limit, int[] caPids)
    {
        Console.Error.WriteLine($"acme: {name}: {hosts.Count} certificates, {how}...");
        var peakIsPerPhase = ProcStats.ResetPeak(gatehouse.Pid);
        var gatehouseCpu = ProcStats.CpuSeconds(gatehouse.Pid);
        var caCpu = caPids.Sum(ProcStats.CpuSeconds);
        var benchCpu = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
        var coreBusy = CoreBusy();
        var samples = new ConcurrentQueue<Sample>();
        var start = DateTimeOffset.UtcNow;
        var deadline = start + limit;
        var stopped = false;
        if (mode == "burst")
        {
            var waits = new List<Task<Sample>>();
            foreach (var host in hosts)
            {
                var added = await AddAsync(host);
                waits.Add(WaitServedAsync(name, host, added.Start, added.Done, Min(added.Start + certificateLimit, deadline)));
            }

            foreach (var sample in await Task.WhenAll(waits))
            {
                samples.Enqueue(sample);
            }

            stopped = samples.Any(s => s.Served is null) && DateTimeOffset.UtcNow >= deadline;
        }
        else
        {
            var next = -1;
            await Task.WhenAll(Enumerable.Range(0, outstanding).Select(async _ =>
            {
                while (true)
                {
                    var index = Interlocked.Increment(ref next);
                    if (index >= hosts.Count)
                    {
                        return;
                    }

                    if (DateTimeOffset.UtcNow >= deadline)
                    {
                        stopped = true;
                        return;
                    }

                    var added = await AddAsync(hosts[index]);
                    var sample = await WaitServedAsync(name, hosts[index], added.Start, added.Done, Min(added.Start + certificateLimit, deadline));
                    samples.Enqueue(outstanding == 1 ? sample with { GatehouseCpuAfter = ProcStats.CpuSeconds(gatehouse.Pid) - gatehouseCpu } : sample);
                }
            }));
        }

        var end = samples.Max(s => s.Served) ?? DateTimeOffset.UtcNow;
        var coreBusyEnd = CoreBusy();
        var result = new PhaseResult(
            name, how, hosts.Count, [.. samples.OrderBy(s => s.AddStart)], start, end,
            ProcStats.CpuSeconds(gatehouse.Pid) - gatehouseCpu,
            caPids.Sum(ProcStats.CpuSeconds) - caCpu,
            Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds - benchCpu,
            ProcStats.Memory(gatehouse.Pid).PeakKiB,
            peakIsPerPhase,
            ProcStats.Memory(gatehouse.Pid).RssKiB,
            stopped,
            coreBusy is { } before && coreBusyEnd is { } after ? (after.Gatehouse - before.Gatehouse, after.Ca - before.Ca) : null);
        var served = result.Samples.Count(s => s.Served is not null);
        Console.Error.WriteLine($"acme: {name}: {served} of {hosts.Count} served in {result.Wall.TotalSeconds:0.00} s");
        return result;
    }

    private (double Gatehouse, double Ca)? CoreBusy() =>
        cores is null ? null : (ProcStats.CoreBusySeconds(cores.Gatehouse), ProcStats.CoreBusySeconds(cores.Ca));

    /// <summary>Waits until Gatehouse used less than <paramref name="maxIdleCores"/> in each of the last
    /// <paramref name="quietSeconds"/> seconds (background JIT done, tier-up's delay run out), at most
    /// <paramref name="limit"/>.</summary>
    public async Task<(TimeSpan Waited, double LastCores)> SettleAsync(double maxIdleCores, int quietSeconds, TimeSpan limit)
    {
        var clock = Stopwatch.StartNew();
        var quiet = 0;
        while (true)
        {
            var cores = await IdleCoresAsync(TimeSpan.FromSeconds(1));
            quiet = cores < maxIdleCores ? quiet + 1 : 0;
            if (quiet >= quietSeconds || clock.Elapsed >= limit)
            {
                return (clock.Elapsed, cores);
            }
        }
    }

    /// <summary>Gatehouse's CPU use while nothing is asked of it (timers, store polls), cores.</summary>
    public async Task<double> IdleCoresAsync(TimeSpan duration)
    {
        var before = ProcStats.CpuSeconds(gatehouse.Pid);
        var clock = Stopwatch.StartNew();
        await Task.Delay(duration);
        return (ProcStats.CpuSeconds(gatehouse.Pid) - before) / clock.Elapsed.TotalSeconds;
    }

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    private async Task<(DateTimeOffset Start, DateTimeOffset Done)> AddAsync(string host)
    {
        var start = DateTimeOffset.UtcNow;
        await admin.AddSiteAsync(host, "pebble");
        return (start, DateTimeOffset.UtcNow);
    }

    private async Task<Sample> WaitServedAsync(string phase, string host, DateTimeOffset addStart, DateTimeOffset addDone, DateTimeOffset deadline)
    {
        var issued = gatehouse.IssuedSignal(host);
        var probes = 0;
        while (true)
        {
            probes++;
            var probeStart = DateTimeOffset.UtcNow;
            if (await TlsProbe.ServedSerialAsync(httpsPort, host, issuingRoot, TimeSpan.FromSeconds(5)) is { } serial)
            {
                var served = DateTimeOffset.UtcNow;
                return new Sample(phase, host, addStart, addDone, served, serial, probes, served - probeStart);
            }

            var now = DateTimeOffset.UtcNow;
            if (now >= deadline)
            {
                Console.Error.WriteLine($"acme: {host} was not served with a Pebble certificate within {(deadline - addStart).TotalSeconds:0} s; last log lines:\n{string.Join('\n', gatehouse.Tail(10))}");
                return new Sample(phase, host, addStart, addDone, null, null, probes);
            }

            if (issued.IsCompleted)
            {
                await Task.Delay(FastProbe);
            }
            else
            {
                await Task.WhenAny(issued, Task.Delay(Min(now + SlowProbe, deadline) - now));
            }
        }
    }
}
