using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.RegularExpressions;

/// <summary>Settings, from environment variables (see bench/README.md, "edge/").</summary>
internal sealed record Settings
{
    public required int Reps { get; init; }
    public required int Duration { get; init; }
    public required int Warmup { get; init; }
    public required int HsWarmup { get; init; }
    public required int WarmSlice { get; init; }
    public required int WarmTolerance { get; init; }
    public required int[] Rows { get; init; }
    public required string[] Peers { get; init; }
    public required int Certs { get; init; }
    public required int BigCerts { get; init; }
    public required int KaConns { get; init; }
    public required int H2Conns { get; init; }
    public required int H2Streams { get; init; }
    public required int HsConns { get; init; }
    public required int Changes { get; init; }
    public required int ChangeLimit { get; init; }
    public required int PollMs { get; init; }
    public required int ReadyTimeout { get; init; }
    public required int PassthroughMb { get; init; }
    public required int PassthroughConns { get; init; }
    public required int ProxyCpu { get; init; }
    public required int LoadCpu { get; init; }

    public static Settings FromEnvironment()
    {
        static int Int(string name, int fallback, int min, int max)
        {
            var text = Environment.GetEnvironmentVariable(name);
            if (string.IsNullOrEmpty(text))
            {
                return fallback;
            }

            return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max
                ? value
                : throw new ArgumentException($"{name} must be a whole number {min}..{max} (got '{text}')");
        }

        static string[] Words(string name, string fallback) =>
            (Environment.GetEnvironmentVariable(name) is { Length: > 0 } text ? text : fallback).Split([' ', ','], StringSplitOptions.RemoveEmptyEntries);

        var rows = Words("ROWS", "1 2 3 4 5 6 7").Select(r => int.TryParse(r, CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= 7 ? n : throw new ArgumentException($"ROWS: '{r}' is not a row 1..7")).Distinct().Order().ToArray();
        var peers = Words("PEERS", "nginx haproxy caddy gatehouse");
        foreach (var peer in peers)
        {
            if (peer is not ("nginx" or "haproxy" or "caddy" or "gatehouse"))
            {
                throw new ArgumentException($"PEERS: unknown peer '{peer}' (nginx, haproxy, caddy, gatehouse)");
            }
        }

        var settings = new Settings
        {
            Reps = Int("REPS", 3, 1, 20),
            Duration = Int("DURATION", 10, 1, 120),
            Warmup = Int("WARMUP", 60, 0, 300),
            HsWarmup = Int("HS_WARMUP", 20, 0, 300),
            WarmSlice = Int("WARM_SLICE", 5, 1, 30),
            WarmTolerance = Int("WARM_TOL", 5, 1, 100),
            Rows = rows,
            Peers = peers,
            Certs = Int("CERTS", 10000, 2, 1000000),
            BigCerts = Int("BIG_CERTS", 100000, 0, 1000000),
            KaConns = Int("KA_CONNS", 64, 1, 1000),
            H2Conns = Int("H2_CONNS", 16, 1, 1000),
            H2Streams = Int("H2_STREAMS", 10, 1, 1000),
            HsConns = Int("HS_CONNS", 32, 1, 1000),
            Changes = Int("CHANGES", 3, 1, 100),
            ChangeLimit = Int("CHANGE_LIMIT", 120, 1, 600),
            PollMs = Int("POLL_MS", 5, 1, 1000),
            ReadyTimeout = Int("READY_TIMEOUT", 900, 5, 3600),
            PassthroughMb = Int("PT_MB", 1024, 1, 65536),
            PassthroughConns = Int("PT_CONNS", 4, 1, 64),
            ProxyCpu = Int("PROXY_CPU", 0, 0, 1023),
            LoadCpu = Int("LOAD_CPU", 1, 0, 1023),
        };
        if (settings.ProxyCpu == settings.LoadCpu)
        {
            throw new ArgumentException("PROXY_CPU and LOAD_CPU must differ");
        }

        if (settings.Changes + 1 >= settings.Certs)
        {
            throw new ArgumentException("CERTS must be larger than CHANGES + 1");
        }

        return settings;
    }
}

/// <summary>One load run: work done, errors, wall seconds, the terminator's CPU seconds over the same window.</summary>
internal sealed record LoadResult(long Work, long Errors, double Seconds, double CpuSeconds, string Detail)
{
    public double PerSecond => Seconds > 0 ? Work / Seconds : 0;

    public double PerCpuSecond => CpuSeconds > 0 ? Work / CpuSeconds : 0;

    public double Cores => Seconds > 0 ? CpuSeconds / Seconds : 0;
}

/// <summary>The load generators, each pinned to the load core and bounded in time, with the terminator's CPU read
/// from /proc just before each starts and just after it exits.</summary>
internal sealed partial class LoadTools(Settings settings, string hsload, string work)
{
    private int _runs;

    /// <summary>keep-alive HTTP/1.1 over TLS: <c>wrk -t1 -c KA_CONNS</c>.</summary>
    public Task<LoadResult> KeepAliveAsync(Terminator target, int seconds) => MeasureAsync(target, seconds, "wrk",
        ["-t1", $"-c{settings.KaConns}", $"-d{seconds}s", "--timeout", "5s", $"https://localhost:{target.Port}/"], output =>
        {
            var requests = WrkRequests().Match(output);
            if (!requests.Success)
            {
                throw new InvalidOperationException($"wrk printed no request count:\n{output}");
            }

            var errors = WrkErrors().Match(output) is { Success: true } e ? e.Groups.Values.Skip(1).Sum(g => long.Parse(g.Value, CultureInfo.InvariantCulture)) : 0;
            var non2xx = WrkNon2xx().Match(output) is { Success: true } n ? long.Parse(n.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
            var total = long.Parse(requests.Groups[1].Value, CultureInfo.InvariantCulture);
            return (total - non2xx, errors + non2xx, Seconds(requests.Groups[2].Value, requests.Groups[3].Value), "");
        });

    /// <summary>HTTP/2: <c>h2load -t1 -c H2_CONNS -m H2_STREAMS -D seconds</c>; the run fails unless h2 was negotiated.</summary>
    public Task<LoadResult> Http2Async(Terminator target, int seconds) => MeasureAsync(target, seconds, "h2load",
        ["-t1", $"-c{settings.H2Conns}", $"-m{settings.H2Streams}", $"-D{seconds}", $"https://localhost:{target.Port}/"], output =>
        {
            if (!output.Contains("Application protocol: h2", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"h2load did not negotiate h2 with {target.Name}:\n{output}");
            }

            var requests = H2Requests().Match(output);
            var finished = H2Finished().Match(output);
            var status = H2Status().Match(output);
            if (!requests.Success || !finished.Success || !status.Success)
            {
                throw new InvalidOperationException($"h2load printed no request counts:\n{output}");
            }

            var ok = long.Parse(status.Groups[1].Value, CultureInfo.InvariantCulture);
            var failed = long.Parse(requests.Groups[2].Value, CultureInfo.InvariantCulture) + long.Parse(requests.Groups[3].Value, CultureInfo.InvariantCulture);
            var other = long.Parse(status.Groups[2].Value, CultureInfo.InvariantCulture) + long.Parse(status.Groups[3].Value, CultureInfo.InvariantCulture) + long.Parse(status.Groups[4].Value, CultureInfo.InvariantCulture);
            return (ok, failed + other, Seconds(finished.Groups[1].Value, finished.Groups[2].Value), "");
        });

    /// <summary>TLS 1.3 handshakes, one request each: <c>hsload</c>; <paramref name="mode"/> full, resumed or rotate
    /// (full handshakes with the SNI rotating over all <paramref name="names"/>, a file of names); it runs
    /// <paramref name="seconds"/> against <paramref name="target"/>, or stops after <paramref name="count"/> connections
    /// (hsload <c>-n</c>), the seconds then only bounding the run. The detail is hsload's JSON.</summary>
    public Task<LoadResult> HandshakesAsync(Terminator target, int seconds, string mode, string? names = null, int? count = null)
    {
        List<string> arguments = ["-addr", $"127.0.0.1:{target.Port}", "-sni", "localhost", "-c", settings.HsConns.ToString(CultureInfo.InvariantCulture), "-d", $"{seconds}s"];
        if (count is { } n)
        {
            arguments.AddRange(["-n", n.ToString(CultureInfo.InvariantCulture)]);
        }

        if (mode == "resumed")
        {
            arguments.Add("-resume");
        }

        if (mode == "rotate")
        {
            arguments.AddRange(["-names", names!]);
        }

        return MeasureAsync(target, seconds, hsload, [.. arguments], output =>
        {
            using var json = JsonDocument.Parse(output.Trim().Split('\n')[^1]);
            var r = json.RootElement;
            long Get(string name) => r.GetProperty(name).GetInt64();
            var ok = Get("ok");
            var errors = Get("errors") + Get("non200") + Get("not_tls13") + Get("wrong_name");
            // full modes: a resumed connection is an error; resumed mode: a full one is counted, and the share checked by the caller
            if (mode != "resumed")
            {
                errors += Get("reused");
            }

            return (ok, errors, r.GetProperty("elapsed").GetDouble(), output.Trim().Split('\n')[^1]);
        }, extraEnvironment: new() { ["GOMAXPROCS"] = "1" });
    }

    /// <summary>Warm-up: slices of WARM_SLICE s until at least <paramref name="minimum"/> s have passed and the last
    /// two slices agree within WARM_TOL % on work per terminator CPU-second, or twice the minimum has passed (as
    /// bench/tls does: .NET's tiered JIT needs tens of seconds of load). Returns the slices.</summary>
    public async Task<List<LoadResult>> WarmUpAsync(Func<int, Task<LoadResult>> run, int minimum)
    {
        var slices = new List<LoadResult>();
        for (var elapsed = 0; elapsed < 2 * minimum;)
        {
            var slice = await run(settings.WarmSlice);
            slices.Add(slice);
            elapsed += settings.WarmSlice;
            if (elapsed >= minimum && slices.Count >= 2)
            {
                var (a, b) = (slices[^2].PerCpuSecond, slices[^1].PerCpuSecond);
                if (a > 0 && Math.Abs(b - a) * 100 <= settings.WarmTolerance * a)
                {
                    break;
                }
            }
        }

        return slices;
    }

    private static double Seconds(string value, string unit)
    {
        var number = double.Parse(value, CultureInfo.InvariantCulture);
        return unit switch { "ms" => number / 1000, "m" => number * 60, "us" => number / 1e6, _ => number };
    }

    private async Task<LoadResult> MeasureAsync(Terminator target, int seconds, string tool, string[] arguments, Func<string, (long Work, long Errors, double Seconds, string Detail)> parse, Dictionary<string, string>? extraEnvironment = null)
    {
        var start = new ProcessStartInfo("timeout", [(seconds + 30).ToString(CultureInfo.InvariantCulture), "taskset", "-c", settings.LoadCpu.ToString(CultureInfo.InvariantCulture), tool, .. arguments])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var (key, value) in extraEnvironment ?? [])
        {
            start.Environment[key] = value;
        }

        var cpu0 = ProcTree.CpuSeconds(target.Pid);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{tool} did not start");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        var cpu1 = ProcTree.CpuSeconds(target.Pid);
        var text = await output + await error;
        await File.AppendAllTextAsync(Path.Combine(work, "load.log"), $"--- {++_runs} {target.Name} n={target.Count} {Path.GetFileName(tool)} {string.Join(' ', arguments)} (exit {process.ExitCode})\n{text}\n");
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{Path.GetFileName(tool)} against {target.Name} exited with {process.ExitCode}:\n{text}");
        }

        var (work2, errors, secs, detail) = parse(text);
        return new LoadResult(work2, errors, secs, cpu1 - cpu0, detail);
    }

    [GeneratedRegex(@"(\d+) requests in ([\d.]+)(ms|s|m)\b")]
    private static partial Regex WrkRequests();

    [GeneratedRegex(@"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")]
    private static partial Regex WrkErrors();

    [GeneratedRegex(@"Non-2xx or 3xx responses: (\d+)")]
    private static partial Regex WrkNon2xx();

    [GeneratedRegex(@"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored")]
    private static partial Regex H2Requests();

    [GeneratedRegex(@"finished in ([\d.]+)(ms|s|m|us),")]
    private static partial Regex H2Finished();

    [GeneratedRegex(@"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")]
    private static partial Regex H2Status();
}

/// <summary>TLS handshakes and one HTTP request as a client would make them, to check a terminator and to poll for a
/// changed certificate. Every handshake is full (no resumption: a resumed TLS 1.3 session carries no certificate).</summary>
internal static class Probe
{
    /// <summary>The leaf presented for <paramref name="sni"/> (not validated: the caller compares it), or null when
    /// the handshake failed.</summary>
    public static async Task<X509Certificate2?> LeafAsync(int port, string sni, TimeSpan timeout)
    {
        using var attempt = new CancellationTokenSource(timeout);
        using var tcp = new TcpClient();
        try
        {
            await tcp.ConnectAsync(IPAddress.Loopback, port, attempt.Token);
            await using var tls = new SslStream(tcp.GetStream());
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = sni,
                AllowTlsResume = false,
                // the caller compares the leaf with what it expects (Gatehouse's renewed certificates chain to its own CA)
                RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate is not null,
            }, attempt.Token);
            return tls.RemoteCertificate is { } remote ? X509CertificateLoader.LoadCertificate(remote.GetRawCertData()) : null;
        }
        catch (Exception ex) when (ex is SocketException or IOException or AuthenticationException or OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>GET https://localhost:PORT/ over HTTP/1.1, trusting only <paramref name="root"/>: status and body.</summary>
    public static async Task<(int Status, string Body)> GetAsync(int port, X509Certificate2 root)
    {
        var trust = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
        trust.CustomTrustStore.Add(root);
        using var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, token) =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(IPAddress.Loopback, port, token);
                return new NetworkStream(socket, ownsSocket: true);
            },
            SslOptions = new SslClientAuthenticationOptions { CertificateChainPolicy = trust },
        };
        using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
        using var response = await client.GetAsync(new Uri($"https://localhost:{port}/"));
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }
}
