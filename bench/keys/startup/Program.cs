using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using Gatehouse.IntegrationTests.Infrastructure;
using Gatehouse.Keys;
using Gatehouse.Storage.Sqlite;

// bench/keys/startup: for each N, seeds a fresh data directory with N sites and certificate records (plus one probe
// site), then starts `dotnet gatehouse.dll serve` on it REPS times and measures the time from process start to the
// first successful TLS handshake for the probe name, the process's memory at that point, and then how long the first
// HTTP request takes to be answered.
// Usage: gatehouse-bench-startup --gatehouse PATH/gatehouse.dll --work DIR [--counts 0,10000,100000] [--reps 3]
var arguments = Arguments.Parse(args);
var gatehouseDll = Path.GetFullPath(arguments.Require("--gatehouse"));
var work = Path.GetFullPath(arguments.Require("--work"));
var counts = arguments.Get("--counts", "0,10000,100000").Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture)).ToArray();
var reps = int.Parse(arguments.Get("--reps", "3"), CultureInfo.InvariantCulture);
var timeout = TimeSpan.FromSeconds(int.Parse(arguments.Get("--timeout", "600"), CultureInfo.InvariantCulture));

using var certificate = BulkCertificate.Create();
var rows = new List<Row>();
foreach (var count in counts)
{
    var directory = Path.Combine(work, $"n{count}");
    var dataDirectory = Path.Combine(directory, "data");
    Directory.CreateDirectory(dataDirectory);
    var probe = BulkStore.Host(count); // the one seeded after the N others
    var seed = Stopwatch.StartNew();
    await using (var store = SqliteStore.Open(Path.Combine(dataDirectory, "gatehouse.db")))
    using (var provider = SoftwareKeyFileProvider.OpenOrCreate("local", Path.Combine(dataDirectory, "master.key")))
    using (var keyRing = await KeyRingStore.OpenOrCreateAsync(store, new Dictionary<string, IMasterKeyProvider> { ["local"] = provider }, "local", TimeProvider.System, default))
    {
        await BulkStore.SeedAsync(store, new EnvelopeCipher(keyRing), certificate, count + 1);
    }

    seed.Stop();
    var storeBytes = Directory.GetFiles(dataDirectory, "gatehouse.db*").Sum(f => new FileInfo(f).Length);
    Console.Error.WriteLine($"startup: N={count}: seeded in {seed.Elapsed.TotalSeconds:0.0} s ({storeBytes / 1048576.0:0} MiB)");
    var runs = new List<Run>();
    for (var rep = 1; rep <= reps; rep++)
    {
        var run = await MeasureAsync(gatehouseDll, directory, probe, certificate, timeout);
        Console.Error.WriteLine($"startup: N={count} rep {rep}: first handshake after {run.FirstHandshake.TotalSeconds:0.00} s, RSS {run.RssMiB:0} MiB (peak {run.PeakRssMiB:0} MiB), then first HTTP response after {Seconds(run.FirstResponse)}");
        runs.Add(run);
    }

    rows.Add(new Row(count, seed.Elapsed, storeBytes, runs));
}

Console.WriteLine(Report(rows, reps));
return 0;


static async Task<Run> MeasureAsync(string gatehouseDll, string directory, string probe, BulkCertificate certificate, TimeSpan timeout)
{
    var httpsPort = FreePort();
    var config = Path.Combine(directory, "gatehouse.yaml");
    await File.WriteAllTextAsync(config, $"""
        dataDirectory: ./data
        edge: {"{"}address: 127.0.0.1, httpsPort: {httpsPort}, httpPort: {FreePort()}{"}"}
        admin: {"{"}address: 127.0.0.1, port: {FreePort()}{"}"}
        sites: []

        """);
    var start = new ProcessStartInfo("dotnet", ["exec", gatehouseDll, "serve", "--config", config])
    {
        WorkingDirectory = directory,
        RedirectStandardOutput = true,
        RedirectStandardError = true,
    };
    foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("GATEHOUSE_", StringComparison.Ordinal)).ToList())
    {
        start.Environment.Remove(name); // measure the config written above, nothing else
    }

    var log = new StringBuilder();
    var clock = Stopwatch.StartNew();
    using var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start");
    process.OutputDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
    process.ErrorDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
    process.BeginOutputReadLine();
    process.BeginErrorReadLine();
    try
    {
        while (!await TryHandshakeAsync(httpsPort, probe, certificate))
        {
            if (process.HasExited || clock.Elapsed > timeout)
            {
                throw new InvalidOperationException($"Gatehouse served no handshake for {probe} within {clock.Elapsed.TotalSeconds:0} s; its output:\n{log}");
            }

            await Task.Delay(10);
        }

        var firstHandshake = clock.Elapsed;
        var (rss, peak) = ProcStats.Memory(process.Id);
        var firstResponse = await FirstResponseAsync(httpsPort, probe, certificate, timeout);
        return new Run(firstHandshake, firstResponse, rss / 1024.0, peak / 1024.0);
    }
    finally
    {
        await StopAsync(process);
    }
}

static async Task<bool> TryHandshakeAsync(int port, string serverName, BulkCertificate certificate)
{
    using var attempt = new CancellationTokenSource(TimeSpan.FromSeconds(30));
    using var tcp = new TcpClient();
    try
    {
        await tcp.ConnectAsync(IPAddress.Loopback, port, attempt.Token);
        await using var tls = new SslStream(tcp.GetStream());
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = serverName, CertificateChainPolicy = certificate.TrustOnlyRoot() }, attempt.Token);
        return true;
    }
    catch (Exception ex) when (ex is SocketException or IOException or System.Security.Authentication.AuthenticationException or OperationCanceledException)
    {
        return false;
    }
}

// The first HTTP request after the first handshake (any status counts; the probe's backend is down, so 502): what the
// routing needs before it answers. Null when there was no answer within the timeout.
static async Task<TimeSpan?> FirstResponseAsync(int port, string serverName, BulkCertificate certificate, TimeSpan timeout)
{
    using var handler = new SocketsHttpHandler
    {
        ConnectCallback = async (_, cancellationToken) =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(IPAddress.Loopback, port, cancellationToken);
            return new NetworkStream(socket, ownsSocket: true);
        },
        SslOptions = new SslClientAuthenticationOptions { CertificateChainPolicy = certificate.TrustOnlyRoot() },
    };
    using var client = new HttpClient(handler) { Timeout = timeout };
    var clock = Stopwatch.StartNew();
    try
    {
        using var response = await client.GetAsync(new Uri($"https://{serverName}:{port}/"));
        return clock.Elapsed;
    }
    catch (TaskCanceledException)
    {
        return null;
    }
}

static Task StopAsync(Process process) => ProcessStop.TerminateAsync(process, TimeSpan.FromSeconds(30));

static int FreePort()
{
    using var listener = new TcpListener(IPAddress.Loopback, 0);
    listener.Start();
    return ((IPEndPoint)listener.LocalEndpoint).Port;
}

static string Report(List<Row> rows, int reps)
{
    var text = new StringBuilder();
    text.AppendLine(CultureInfo.InvariantCulture, $"| N records (+1 probe) | store size | seed time | process start → first handshake, median (min–max) of {reps} | RSS at first handshake | peak RSS | then first HTTP response, median |");
    text.AppendLine("|---:|---:|---:|---:|---:|---:|---:|");
    foreach (var row in rows)
    {
        var times = row.Runs.Select(r => r.FirstHandshake.TotalSeconds).Order().ToList();
        text.AppendLine(CultureInfo.InvariantCulture, $"| {row.Count:N0} | {row.StoreBytes / 1048576.0:0} MiB | {row.Seed.TotalSeconds:0.0} s | {times[times.Count / 2]:0.00} s ({times[0]:0.00}–{times[^1]:0.00}) | {row.Runs.Select(r => r.RssMiB).Order().ElementAt(row.Runs.Count / 2):0} MiB | {row.Runs.Max(r => r.PeakRssMiB):0} MiB | {Seconds(row.Runs.Select(r => r.FirstResponse).OrderBy(t => t ?? TimeSpan.MaxValue).ElementAt(row.Runs.Count / 2))} |");
    }

    return text.ToString();
}

static string Seconds(TimeSpan? time) => time is { } t ? $"{t.TotalSeconds:0.00} s" : "no answer (timeout)";

internal sealed record Run(TimeSpan FirstHandshake, TimeSpan? FirstResponse, double RssMiB, double PeakRssMiB);

internal sealed record Row(int Count, TimeSpan Seed, long StoreBytes, List<Run> Runs);
