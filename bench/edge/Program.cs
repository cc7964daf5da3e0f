using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

// bench/edge: Gatehouse beside nginx, HAProxy and Caddy as TLS terminators, same machine, same backend, same
// certificates (issue 5, "Performance"). Run it with bench/edge/run, which installs the tools, publishes Gatehouse,
// builds hsload and this program, and stops whatever is left at exit. Settings: environment variables (Settings).
// Usage: gatehouse-bench-edge --gatehouse DLL --hsload PATH --splice PATH --work DIR --pids FILE --report FILE --meta TEXT
var arguments = Arguments.Parse(args);
var settings = Settings.FromEnvironment();
// How long row 4's first pass (CERTS handshakes, one per name) may take before the bench gives up on the terminator.
const int FirstPassLimitSeconds = 590; // hsload takes at most 10 min
var work = Path.GetFullPath(arguments.Require("--work"));
Directory.CreateDirectory(work);
var started = new StartedProcesses(arguments.Require("--pids"));
var tools = new LoadTools(settings, arguments.Require("--hsload"), work);
var results = new Results();
var rows = settings.Rows.ToHashSet();
var clock = Stopwatch.StartNew();
var loadStart = File.ReadAllText("/proc/loadavg").Split(' ')[..3];

Log.Line($"rows {string.Join(' ', settings.Rows)}; peers {string.Join(' ', settings.Peers)}; {settings.Reps} reps; {settings.Duration} s runs; CERTS={settings.Certs} BIG_CERTS={settings.BigCerts}");
using var pki = Pki.Create(Path.Combine(work, "pki"));
var needed = rows.Overlaps([4, 5, 6]) ? settings.Certs : 1;
if (rows.Contains(5))
{
    needed = Math.Max(needed, settings.BigCerts);
}

var pkiClock = Stopwatch.StartNew();
pki.Ensure(needed);
Log.Line($"made {needed:N0} ECDSA P-256 leaves (one intermediate) in {pkiClock.Elapsed.TotalSeconds:0.0} s");
var namesFile = Path.Combine(work, "names.txt");
await File.WriteAllLinesAsync(namesFile, Enumerable.Range(0, settings.Certs).Select(Pki.Name));

// the backend: one nginx answering 200 "ok\n", pinned to the load core, shared by every terminator
var backendPort = Ports.Free();
var backendDir = Path.Combine(work, "backend");
Directory.CreateDirectory(Path.Combine(backendDir, "tmp"));
await File.WriteAllTextAsync(Path.Combine(backendDir, "nginx.conf"), $$"""
    daemon off;
    master_process on;
    worker_processes 1;
    pid {{backendDir}}/nginx.pid;
    error_log {{backendDir}}/error.log warn;
    events { worker_connections 8192; }
    http {
      access_log off;
      client_body_temp_path {{backendDir}}/tmp/body;
      proxy_temp_path {{backendDir}}/tmp/proxy;
      fastcgi_temp_path {{backendDir}}/tmp/fastcgi;
      uwsgi_temp_path {{backendDir}}/tmp/uwsgi;
      scgi_temp_path {{backendDir}}/tmp/scgi;
      keepalive_requests 10000000;
      keepalive_timeout 120s;
      server {
        listen 127.0.0.1:{{backendPort}} backlog=4096;
        location / { default_type text/plain; return 200 "ok\n"; }
      }
    }

    """);
using var backend = Process.Start(new ProcessStartInfo("taskset", ["-c", settings.LoadCpu.ToString(CultureInfo.InvariantCulture), "/usr/sbin/nginx", "-p", backendDir, "-c", Path.Combine(backendDir, "nginx.conf"), "-e", Path.Combine(backendDir, "error.log")])
{
    RedirectStandardOutput = true,
    RedirectStandardError = true,
}) ?? throw new InvalidOperationException("backend nginx did not start");
started.Add(backend.Id, "nginx");
await WaitListeningAsync(backendPort, TimeSpan.FromSeconds(10));

var context = new BenchContext(settings, pki, backendPort, Path.GetFullPath(arguments.Require("--gatehouse")), started, work);
var failures = new List<string>();
try
{
    for (var rep = 1; rep <= settings.Reps; rep++)
    {
        if (rows.Overlaps([1, 2, 3, 5]))
        {
            foreach (var peer in settings.Peers)
            {
                await using var t = await StartCheckedAsync(peer, 1, rep);
                await MeasureOneCertificateAsync(t, rep);
            }
        }

        if (rows.Overlaps([4, 5, 6]))
        {
            foreach (var peer in settings.Peers)
            {
                await using var t = await StartCheckedAsync(peer, settings.Certs, rep);
                await MeasureManyCertificatesAsync(t, rep);
            }
        }

        if (rows.Contains(5) && settings.BigCerts > 0)
        {
            foreach (var peer in settings.Peers)
            {
                await using var t = await StartCheckedAsync(peer, settings.BigCerts, rep);
            }
        }

        if (rows.Contains(7))
        {
            foreach (var peer in settings.Peers.Where(p => p is "haproxy" or "gatehouse"))
            {
                await PassthroughAsync(peer, rep, arguments.Require("--splice"));
            }
        }
    }
}
catch (Exception ex) when (ex is InvalidOperationException or IOException or HttpRequestException or TimeoutException)
{
    failures.Add(ex.Message);
    Log.Line("FAILED: " + ex.Message);
}
finally
{
    await ProcessStop.TerminateAsync(backend, TimeSpan.FromSeconds(10));
}

await File.WriteAllTextAsync(arguments.Require("--report"), Report());
Log.Line($"done in {clock.Elapsed.TotalMinutes:0.0} min");
return failures.Count == 0 ? 0 : 1;

// ---------------------------------------------------------------------------------------------------------------------

// Starts a terminator serving names 0..count-1, times process start → first handshake presenting the expected leaf
// for the last name, reads its idle RSS, and checks it: 200 "ok" from the backend through it and the expected leaf for
// several names. Anything else stops the bench with the peer's log.
async Task<Terminator> StartCheckedAsync(string peer, int count, int rep)
{
    var t = Terminator.Create(context, peer, count);
    try
    {
        Log.Line($"rep {rep}: {peer} with {count:N0} certificate(s)");
        await t.PrepareAsync();
        var last = count - 1;
        var expected = pki.Leaf(last).Thumbprint;
        var start = Stopwatch.StartNew();
        t.Start();
        while (true)
        {
            using var leaf = await Probe.LeafAsync(t.Port, Pki.Name(last), TimeSpan.FromSeconds(10));
            if (leaf?.Thumbprint == expected)
            {
                break;
            }

            if (t.Process!.HasExited || start.Elapsed > TimeSpan.FromSeconds(settings.ReadyTimeout))
            {
                throw new InvalidOperationException($"{peer} with {count:N0} certificates served no handshake with the expected certificate for {Pki.Name(last)} within {start.Elapsed.TotalSeconds:0} s (exited: {t.Process.HasExited}; got: {leaf?.Subject ?? "no handshake"}); its log:\n{t.LogTail()}");
            }

            await Task.Delay(10);
        }

        var startup = start.Elapsed.TotalSeconds;
        await Task.Delay(2000);
        var rss = ProcTree.RssMiB(t.Pid);
        var pss = ProcTree.PssMiB(t.Pid);
        await CheckAsync(t);
        if (rows.Contains(5))
        {
            results.Add("5", $"start{count}", peer, startup);
            results.Add("5", $"rss{count}", peer, rss);
            results.Add("5", $"pss{count}", peer, pss);
        }

        results.Runs.Add($"rep {rep} {peer} n={count}: first handshake {startup:0.00} s after start, 2 s later RSS {rss:0.0} MiB, PSS {pss:0.0} MiB ({ProcTree.Pids(t.Pid).Count} processes)");
        Log.Line($"  ready in {startup:0.00} s, RSS {rss:0.0} MiB, PSS {pss:0.0} MiB, checked");
        return t;
    }
    catch
    {
        await t.DisposeAsync();
        throw;
    }
}

async Task CheckAsync(Terminator t)
{
    var (status, body) = await Probe.GetAsync(t.Port, pki.Root);
    if (status != 200 || body != "ok\n")
    {
        throw new InvalidOperationException($"{t.Name}: GET https://localhost/ answered {status} '{body.Trim()}', not 200 'ok' from the backend; its log:\n{t.LogTail()}");
    }

    foreach (var index in new[] { 0, t.Count / 2, t.Count - 1 }.Where(i => i == 0 || i > settings.Changes).Distinct())
    {
        using var leaf = await Probe.LeafAsync(t.Port, Pki.Name(index), TimeSpan.FromSeconds(10));
        using var expected = pki.Leaf(index);
        if (leaf?.Thumbprint != expected.Thumbprint)
        {
            throw new InvalidOperationException($"{t.Name}: SNI {Pki.Name(index)} got {(leaf is null ? "no handshake" : $"{leaf.Subject} {leaf.Thumbprint}")}, not the bench's {expected.Subject} {expected.Thumbprint}; its log:\n{t.LogTail()}");
        }
    }
}

// rows 1-3 on a terminator with one certificate (name localhost)
async Task MeasureOneCertificateAsync(Terminator t, int rep)
{
    if (rows.Contains(1))
    {
        await RunRowAsync(t, rep, "1", "requests", settings.Warmup, s => tools.KeepAliveAsync(t, s));
    }

    if (rows.Contains(2))
    {
        await RunRowAsync(t, rep, "2", "requests", settings.Warmup, s => tools.Http2Async(t, s));
    }

    if (rows.Contains(3))
    {
        await RunRowAsync(t, rep, "3a", "handshakes", settings.HsWarmup, s => tools.HandshakesAsync(t, s, "full"));
        var resumed = await RunRowAsync(t, rep, "3b", "handshakes", settings.HsWarmup, s => tools.HandshakesAsync(t, s, "resumed"));
        var share = ResumedShare(resumed.Detail);
        results.Add("3b", "resumed_share", t.Name, share * 100);
    }

    if (rows.Contains(5))
    {
        results.Add("5", "rss1_after", t.Name, ProcTree.RssMiB(t.Pid));
    }
}

// rows 4 and 6 on a terminator with CERTS certificates
async Task MeasureManyCertificatesAsync(Terminator t, int rep)
{
    if (rows.Contains(4))
    {
        // First, one handshake per name, in order: each certificate's first handshake since start (where Gatehouse
        // prepares it, and the others have it loaded already), reported as its own column. The warm-up and the
        // measured run after it are then the steady state, and the RSS after this row is after every name was used.
        var firstPass = await tools.HandshakesAsync(t, FirstPassLimitSeconds, "rotate", namesFile, count: settings.Certs);
        if (firstPass.Errors > 0 || firstPass.Work != settings.Certs)
        {
            throw new InvalidOperationException($"{t.Name}, row 4 first pass: {firstPass.Work} of {settings.Certs} handshakes, {firstPass.Errors} errors ({firstPass.Detail}); see load.log in the work dir");
        }

        results.Add("4", "first_pass", t.Name, firstPass.PerCpuSecond);
        results.Runs.Add($"rep {rep} {t.Name} row 4 first pass: {settings.Certs} names once each in {firstPass.Seconds:0.0} s, {firstPass.PerCpuSecond:0} per CPU-s {firstPass.Detail}");
        Log.Line($"  row 4 first pass: {settings.Certs} names in {firstPass.Seconds:0.0} s, {firstPass.PerCpuSecond:0} per CPU-s");
        await RunRowAsync(t, rep, "4", "handshakes", settings.HsWarmup, s => tools.HandshakesAsync(t, s, "rotate", namesFile));
        if (rows.Contains(5))
        {
            results.Add("5", "rss_rotated", t.Name, ProcTree.RssMiB(t.Pid));
            results.Add("5", "pss_rotated", t.Name, ProcTree.PssMiB(t.Pid));
        }
    }

    if (rows.Contains(6))
    {
        foreach (var variant in t.ChangeVariants)
        {
            var line = t.ChangeVariants.Count > 1 || t.Name != "gatehouse" ? $"{t.Name} ({variant})" : t.Name;
            for (var k = 0; k < settings.Changes; k++)
            {
                var index = 1 + k;
                await t.PrepareChangeAsync(index);
                using var before = await Probe.LeafAsync(t.Port, Pki.Name(index), TimeSpan.FromSeconds(10));
                var old = before?.SerialNumber ?? throw new InvalidOperationException($"{t.Name}: no handshake for {Pki.Name(index)} before the change");
                var (served, command) = await TimeChangeAsync(t, index, variant, old);
                results.Add("6", "served", line, served);
                results.Add("6", "command", line, command);
                results.Runs.Add($"rep {rep} {line} {Pki.Name(index)}: served after {served * 1000:0} ms (command {command * 1000:0} ms)");
                await t.SettleAsync();
                await Task.Delay(200);
            }

            Log.Line($"  row 6 {line}: median {Results.Median(results.Get("6", "served", line)) * 1000:0} ms");
        }
    }
}

// From just before the change command to the end of the first full handshake presenting a leaf other than `old`
// (probes every POLL_MS, from a fresh connection each); also how long the command itself took.
async Task<(double Served, double Command)> TimeChangeAsync(Terminator t, int index, string variant, string old)
{
    var limit = TimeSpan.FromSeconds(settings.ChangeLimit);
    var timer = Stopwatch.StartNew();
    var change = Task.Run(async () =>
    {
        await t.ChangeCertificateAsync(index, variant);
        return timer.Elapsed.TotalSeconds;
    });
    while (true)
    {
        using var leaf = await Probe.LeafAsync(t.Port, Pki.Name(index), TimeSpan.FromSeconds(10));
        if (leaf is not null && leaf.SerialNumber != old)
        {
            var served = timer.Elapsed.TotalSeconds;
            return (served, await change);
        }

        if (change.IsFaulted)
        {
            await change;
        }

        if (timer.Elapsed > limit)
        {
            throw new TimeoutException($"{t.Name} ({variant}) did not serve the changed certificate for {Pki.Name(index)} within {limit.TotalSeconds:0} s; its log:\n{t.LogTail()}");
        }

        await Task.Delay(settings.PollMs);
    }
}

async Task<LoadResult> RunRowAsync(Terminator t, int rep, string table, string unit, int warmup, Func<int, Task<LoadResult>> run)
{
    var slices = warmup > 0 ? await tools.WarmUpAsync(run, warmup) : [];
    var measured = await run(settings.Duration);
    if (measured.Errors > 0)
    {
        throw new InvalidOperationException($"{t.Name}, row {table}: {measured.Errors} errors, non-200 answers, wrong certificates or unexpected resumptions in the measured run ({measured.Detail}); see load.log in the work dir");
    }

    results.Add(table, "per_s", t.Name, measured.PerSecond);
    results.Add(table, "per_cpu_s", t.Name, measured.PerCpuSecond);
    results.Add(table, "cores", t.Name, measured.Cores);
    if (slices.Count > 0)
    {
        results.Add(table, "cold", t.Name, slices[0].PerCpuSecond);
    }

    var warm = string.Join(",", slices.Select(s => s.PerCpuSecond.ToString("0", CultureInfo.InvariantCulture)));
    results.Runs.Add($"rep {rep} {t.Name} row {table}: {measured.PerSecond:0} {unit}/s, {measured.PerCpuSecond:0} per CPU-s, {measured.Cores:0.00} cores (warm-up slices per CPU-s: {(warm.Length > 0 ? warm : "none")}){(measured.Detail.Length > 0 ? " " + measured.Detail : "")}");
    Log.Line($"  row {table}: {measured.PerSecond:0} {unit}/s, {measured.PerCpuSecond:0} per CPU-s, {measured.Cores:0.00} cores");
    return measured;
}

static double ResumedShare(string hsloadJson)
{
    using var json = System.Text.Json.JsonDocument.Parse(hsloadJson);
    var conns = json.RootElement.GetProperty("conns").GetDouble();
    return conns > 0 ? json.RootElement.GetProperty("reused").GetDouble() / conns : 0;
}

// row 7: the terminator's passthrough against HAProxy in TCP mode, with bench/passthrough's splice.py (its own backend
// and clients, pinned to the load core); the proxy is pinned to the proxy core and started fresh.
async Task PassthroughAsync(string peer, int rep, string splice)
{
    var directory = Path.Combine(work, $"passthrough-{peer}-{rep}");
    Directory.CreateDirectory(directory);
    var port = Ports.Free();
    var backendPort = Ports.Free();
    string[] command;
    if (peer == "haproxy")
    {
        await File.WriteAllTextAsync(Path.Combine(directory, "haproxy.cfg"), $$"""
            global
                nbthread 1
                maxconn 1000
            defaults
                mode tcp
                timeout connect 5s
                timeout client 1h
                timeout server 1h
            frontend tls
                bind 127.0.0.1:{{port}}
                tcp-request inspect-delay 10s
                tcp-request content accept if { req_ssl_hello_type 1 }
                use_backend bench if { req_ssl_sni -i bench.test }
            backend bench
                server b1 127.0.0.1:{{backendPort}} send-proxy-v2

            """);
        command = ["/usr/sbin/haproxy", "-db", "-f", Path.Combine(directory, "haproxy.cfg")];
    }
    else
    {
        await File.WriteAllTextAsync(Path.Combine(directory, "gatehouse.yaml"), $"""
            dataDirectory: ./data
            edge: {"{"}address: 127.0.0.1, httpsPort: {port}, httpPort: {Ports.Free()}{"}"}
            admin: {"{"}address: 127.0.0.1, port: {Ports.Free()}{"}"}
            sites:
              - hosts: [bench.test]
                mode: passthrough
                proxyProtocol: v2
                backends: [127.0.0.1:{backendPort}]

            """);
        command = ["dotnet", "exec", context.GatehouseDll, "serve", "--config", Path.Combine(directory, "gatehouse.yaml")];
    }

    var start = new ProcessStartInfo("taskset", ["-c", settings.ProxyCpu.ToString(CultureInfo.InvariantCulture), .. command])
    {
        WorkingDirectory = directory,
        RedirectStandardOutput = true,
        RedirectStandardError = true,
    };
    foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("GATEHOUSE_", StringComparison.Ordinal)).ToList())
    {
        start.Environment.Remove(name);
    }

    start.Environment["DOTNET_gcServer"] = "0";
    start.Environment["DOTNET_TieredPGO"] = "1";
    using var proxy = Process.Start(start) ?? throw new InvalidOperationException($"{peer} did not start");
    started.Add(proxy.Id, peer == "haproxy" ? "haproxy" : "dotnet");
    var output = new StringBuilder();
    proxy.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
    proxy.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
    proxy.BeginOutputReadLine();
    proxy.BeginErrorReadLine();
    try
    {
        await WaitListeningAsync(port, TimeSpan.FromSeconds(settings.ReadyTimeout));
        await Task.Delay(2000); // start-up work (the admin listener's certificate) settles, as bench/passthrough does
        var splicer = new ProcessStartInfo("timeout", ["600", "taskset", "-c", settings.LoadCpu.ToString(CultureInfo.InvariantCulture), "python3", splice,
            "--label", peer, "--proxy-port", port.ToString(CultureInfo.InvariantCulture), "--backend-port", backendPort.ToString(CultureInfo.InvariantCulture),
            "--proxy-pid", proxy.Id.ToString(CultureInfo.InvariantCulture), "--name", "bench.test", "--mb", settings.PassthroughMb.ToString(CultureInfo.InvariantCulture),
            "--connections", settings.PassthroughConns.ToString(CultureInfo.InvariantCulture)])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var run = Process.Start(splicer) ?? throw new InvalidOperationException("splice.py did not start");
        var text = await run.StandardOutput.ReadToEndAsync() + await run.StandardError.ReadToEndAsync();
        await run.WaitForExitAsync();
        await File.AppendAllTextAsync(Path.Combine(work, "load.log"), $"--- passthrough {peer} rep {rep} (exit {run.ExitCode})\n{text}\n");
        var found = 0;
        foreach (Match m in Regex.Matches(text, @"(upload|download)\s+(\d+) MiB\s+wall\s+([\d.]+) s\s+(\d+) MiB/s\s+proxy CPU\s+([\d.]+) s\s+(\d+) MiB per CPU-second"))
        {
            var mode = m.Groups[1].Value;
            results.Add("7", mode + "_cpu", peer, double.Parse(m.Groups[6].Value, CultureInfo.InvariantCulture));
            results.Add("7", mode + "_s", peer, double.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture));
            found++;
        }

        if (run.ExitCode != 0 || found != 2)
        {
            throw new InvalidOperationException($"passthrough through {peer}: splice.py exited with {run.ExitCode}:\n{text}\n{peer}'s output:\n{output}");
        }

        results.Runs.Add($"rep {rep} {peer} row 7: {string.Join(" | ", text.Trim().Split('\n'))}");
        Log.Line($"  row 7 {peer}: {string.Join(" | ", text.Trim().Split('\n'))}");
    }
    finally
    {
        await ProcessStop.TerminateAsync(proxy, TimeSpan.FromSeconds(10));
    }
}

static async Task WaitListeningAsync(int port, TimeSpan limit)
{
    var clock = Stopwatch.StartNew();
    while (true)
    {
        try
        {
            using var tcp = new TcpClient();
            await tcp.ConnectAsync("127.0.0.1", port);
            return;
        }
        catch (SocketException) when (clock.Elapsed < limit)
        {
            await Task.Delay(50);
        }
    }
}

string Report()
{
    var c = settings.Certs.ToString("N0", CultureInfo.InvariantCulture);
    var b = settings.BigCerts.ToString("N0", CultureInfo.InvariantCulture);
    Table[] tables =
    [
        new("1", "1. Keep-alive HTTPS requests (HTTP/1.1, wrk)",
            [new("per_s", "requests/s", "N0"), new("per_cpu_s", "requests per terminator CPU-s", "N0"), new("cores", "terminator cores used", "0.00"), new("cold", "first warm-up slice, per CPU-s", "N0")],
            new("per_cpu_s", "per CPU-s", "N0"), new("≥ 0.6× nginx", MinRatio: 0.6)),
        new("2", "2. HTTP/2 requests (h2load)",
            [new("per_s", "requests/s", "N0"), new("per_cpu_s", "requests per terminator CPU-s", "N0"), new("cores", "terminator cores used", "0.00"), new("cold", "first warm-up slice, per CPU-s", "N0")],
            new("per_cpu_s", "per CPU-s", "N0"), new("≥ 0.9× nginx", MinRatio: 0.9)),
        new("3a", "3a. Full TLS 1.3 handshakes, resumption off (hsload; one request per connection)",
            [new("per_s", "handshakes/s", "N0"), new("per_cpu_s", "handshakes per terminator CPU-s", "N0"), new("cores", "terminator cores used", "0.00"), new("cold", "first warm-up slice, per CPU-s", "N0")],
            new("per_cpu_s", "per CPU-s", "N0"), new("≥ 0.5× nginx", MinRatio: 0.5)),
        new("3b", "3b. Resumed TLS 1.3 handshakes (hsload -resume; one request per connection)",
            [new("per_s", "connections/s", "N0"), new("per_cpu_s", "connections per terminator CPU-s", "N0"), new("cores", "terminator cores used", "0.00"), new("resumed_share", "connections that resumed, %", "0.0")],
            new("per_cpu_s", "per CPU-s", "N0"), new("no ratio target", AheadOfCaddy: true),
            "A terminator that does not resume (share near 0 %) is doing full handshakes in this row; the share is per connection, counted by the client (`DidResume`)."),
        new("4", $"4. Full handshakes with {c} certificates loaded, SNI rotating over all of them (hsload -names)",
            [new("per_s", "handshakes/s", "N0"), new("per_cpu_s", "handshakes per terminator CPU-s", "N0"), new("cores", "terminator cores used", "0.00"), new("cold", "first warm-up slice, per CPU-s", "N0"), new("first_pass", "first pass (each name once, first since start), per CPU-s", "N0")],
            new("per_cpu_s", "per CPU-s", "N0"), new("≥ 0.5× nginx", MinRatio: 0.5),
            "Before its warm-up, each terminator gets one pass over every name in order (the first handshake of each certificate since start: where Gatehouse prepares a certificate, which the others did at start-up); that pass is the last column, the measured run after the warm-up is the steady state."),
        new("5", "5. Resident memory (VmRSS of all the terminator's processes, MiB) and start-up (process start → first handshake presenting the last name's certificate, s)",
            [new("rss1", "RSS idle, 1 cert", "0.0", false), new("rss1_after", "RSS before stop (after rows 1–3 when run), 1 cert", "0.0", false), new($"rss{settings.Certs}", $"RSS idle, {c} certs", "0.0", false),
             new($"pss{settings.Certs}", $"PSS idle, {c} certs", "0.0", false), new("rss_rotated", $"RSS after row 4 ({c} certs used)", "0.0", false),
             new("pss_rotated", $"PSS after row 4", "0.0", false), new($"rss{settings.BigCerts}", $"RSS idle, {b} certs", "0.0", false), new($"pss{settings.BigCerts}", $"PSS idle, {b} certs", "0.0", false),
             new("start1", "start-up, 1 cert", "0.00", false), new($"start{settings.Certs}", $"start-up, {c} certs", "0.00", false), new($"start{settings.BigCerts}", $"start-up, {b} certs", "0.00", false)],
            new($"pss{settings.Certs}", $"PSS idle, {c} certs", "0.0", false), new($"resident memory with {c} certificates below nginx's (PSS)", MaxRatio: 0.9999),
            "Idle RSS / PSS are read 2 s after the first handshake. RSS sums VmRSS over the terminator's processes, so pages nginx's and HAProxy's master and worker share (the loaded certificates) count twice; PSS (`Pss` of `/proc/PID/smaps_rollup`) divides shared pages among the processes mapping them, and is the figure the target is judged on. PSS also shrinks when unrelated processes map the same files (another `dotnet` sharing the runtime's libraries), so it is exact only on an otherwise idle machine. Gatehouse prepares a certificate (chain parsed, key unsealed) on the first handshake that selects it and keeps the records in memory; nginx, HAProxy and Caddy load every certificate at start-up, so compare also the column after row 4, when every certificate has been used at least once (its first pass). nginx and HAProxy are a master and one worker (both counted; shared pages counted twice)."),
        new("6", $"6. Certificate change → first handshake presenting the new certificate, {c} certificates loaded (s)",
            [new("served", "change → served, s", "0.000", false), new("command", "change command returned, s", "0.000", false)],
            new("served", "change → served", "0.000", false), new("≥ 20× faster than nginx's reload", MaxRatio: 0.05),
            "Gatehouse: `POST /v1/certificates/{name}/renew` through the admin API (the certificate becomes due, its local CA issues a new one — key generation and signing included — the store commit reaches the edge's cache). nginx: new PEM file, then `nginx -s reload` (which parses the whole config, then the master re-reads everything). HAProxy: new PEM file, then SIGUSR2 to the master (reload), or `set ssl cert` + `commit ssl cert` on its stats socket (runtime API, in memory). Caddy: new PEM file, then `POST /load` of the whole config with `Cache-Control: must-revalidate`. Probes: a fresh connection and full handshake every POLL_MS ms from the change on; the time ends with the first handshake presenting a leaf with another serial."),
        new("7", "7. TLS passthrough bytes (bench/passthrough's splice.py: real ClientHello, then opaque bytes; PROXY v2 to the backend)",
            [new("upload_cpu", "upload MiB per proxy CPU-s", "N0"), new("download_cpu", "download MiB per proxy CPU-s", "N0"), new("upload_s", "upload MiB/s", "N0"), new("download_s", "download MiB/s", "N0")],
            new("upload_cpu", "upload per CPU-s", "N0"), new("reference HAProxy (TCP mode)", AheadOfCaddy: false, Reference: "haproxy"),
            "HAProxy `mode tcp`, routing by `req_ssl_sni`, `send-proxy-v2`, one thread, single process; Gatehouse a `mode: passthrough` site with `proxyProtocol: v2`. The ratio column is upload; compare download in its own columns."),
    ];
    var text = new StringBuilder();
    text.AppendLine(CultureInfo.InvariantCulture, $"# Edge terminators: Gatehouse, nginx, HAProxy, Caddy ({DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC)");
    text.AppendLine();
    if (failures.Count > 0)
    {
        text.AppendLine("**The run stopped early:**");
        text.AppendLine();
        text.AppendLine("```");
        text.AppendLine(string.Join("\n", failures));
        text.AppendLine("```");
        text.AppendLine();
    }

    text.AppendLine(arguments.Get("--meta", "").Replace("\\n", "\n", StringComparison.Ordinal));
    text.AppendLine(CultureInfo.InvariantCulture, $"- Load average: {string.Join(' ', loadStart)} (start), {string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ')[..3])} (end); run took {clock.Elapsed.TotalMinutes:0.0} min.");
    text.AppendLine(CultureInfo.InvariantCulture, $"- Settings: REPS={settings.Reps} DURATION={settings.Duration} s, warm-up ≥ {settings.Warmup} s (requests) / {settings.HsWarmup} s (handshakes) in {settings.WarmSlice} s slices until two agree within {settings.WarmTolerance} % (at most twice the minimum), CERTS={settings.Certs} BIG_CERTS={settings.BigCerts}, wrk -c{settings.KaConns}, h2load -c{settings.H2Conns} -m{settings.H2Streams}, hsload -c{settings.HsConns}, CHANGES={settings.Changes} per variant and rep, POLL_MS={settings.PollMs}, passthrough {settings.PassthroughMb} MiB each way over {settings.PassthroughConns} connections; rows {string.Join(' ', settings.Rows)}; peers {string.Join(' ', settings.Peers)}.");
    text.AppendLine(CultureInfo.InvariantCulture, $"- Pinning: every terminator `taskset -c {settings.ProxyCpu}`; the backend (nginx, 1 worker, `return 200 \"ok\\n\"`), wrk, h2load, hsload, splice.py and this bench on core {settings.LoadCpu}.");
    text.AppendLine("- Certificates: one ECDSA P-256 root → intermediate → one leaf per name (its own key); every terminator serves the identical files (Gatehouse: the same chain and key in its store's records, the key sealed with its master key). Name 0 is `localhost` (rows 1–3, one certificate loaded), name i `hi.edge.test`.");
    text.AppendLine("- Each cell: median (min–max) over the repetitions; the ratio is median / median of the reference line. Work per terminator CPU-second (utime + stime of all its processes from /proc, read around each run) is the figure to compare; requests/s depends on the shared load core.");
    text.AppendLine();
    foreach (var table in tables.Where(t => rows.Contains(int.Parse(t.Id[..1], CultureInfo.InvariantCulture))))
    {
        text.Append(results.Render(table));
    }

    text.AppendLine("### Configuration of each terminator (and asymmetries)");
    text.AppendLine();
    text.AppendLine("- **nginx**: 1 worker, `ssl_protocols TLSv1.2 TLSv1.3`, `listen … ssl http2`, one server block per name with the PEM file as certificate and key, upstream `keepalive 128`, session tickets on and no session cache (nginx defaults), no access log.");
    text.AppendLine("- **HAProxy**: master-worker (`-W`), `nbthread 1`, `bind … ssl crt-list` (one line per PEM file) `alpn h2,http/1.1`, `ssl-min-ver TLSv1.2`, `mode http` with keep-alive and `http-reuse safe` to the backend, HAProxy's default session cache and tickets, no log.");
    text.AppendLine("- **Caddy**: JSON config, automatic HTTPS off, certificates from `tls.certificates.load_files`, one default connection policy (TLS 1.2 + 1.3, h2 + http/1.1, tickets on), `reverse_proxy` (keep-alive), no access log; a Go program, so GOMAXPROCS is 1 on its one core.");
    text.AppendLine("- **Gatehouse**: `dotnet gatehouse.dll serve` from a Release publish, `DOTNET_gcServer=0 DOTNET_TieredPGO=1`, its default thread pool confined to one core; sites and certificates in its SQLite store (seeded before start, copied per start).");
    text.AppendLine("- Asymmetries: Gatehouse prepares each certificate lazily on first use (the others at start-up); a Gatehouse certificate change includes issuing the certificate (the others load a file the bench wrote before the clock started); Caddy and Gatehouse are garbage-collected runtimes with a thread pool, nginx and HAProxy event loops in C.");
    text.AppendLine();
    text.AppendLine("### Runs, in order");
    text.AppendLine();
    foreach (var run in results.Runs)
    {
        text.AppendLine("- " + run);
    }

    return text.ToString();
}
