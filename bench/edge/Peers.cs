using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;

/// <summary>What every terminator run shares: the settings, the certificates, the backend and the started-process
/// list.</summary>
internal sealed record BenchContext(Settings Settings, Pki Pki, int BackendPort, string GatehouseDll, StartedProcesses Started, string Work);

/// <summary>
/// One running TLS terminator serving names 0..N-1, pinned to the proxy core. Subclasses write the peer's config
/// (production-like: TLS 1.2 + 1.3, HTTP/1.1 + HTTP/2 by ALPN, keep-alive to the backend, one worker or thread, no
/// access log) and know how to make it serve a changed certificate.
/// </summary>
internal abstract class Terminator : IAsyncDisposable
{
    protected Terminator(BenchContext context, string name, int count)
    {
        Context = context;
        Name = name;
        Count = count;
        Directory = Path.Combine(context.Work, $"{name}-n{count}-{Interlocked.Increment(ref s_serial)}");
        System.IO.Directory.CreateDirectory(Directory);
        Port = Ports.Free();
    }

    private static int s_serial;

    public string Name { get; }

    public int Count { get; }

    public int Port { get; }

    public string Directory { get; }

    public Process? Process { get; private set; }

    public int Pid => Process?.Id ?? 0;

    public string LogPath => Path.Combine(Directory, "output.log");

    protected BenchContext Context { get; }

    public static Terminator Create(BenchContext context, string name, int count) => name switch
    {
        "nginx" => new NginxTerminator(context, count),
        "haproxy" => new HaproxyTerminator(context, count),
        "caddy" => new CaddyTerminator(context, count),
        "gatehouse" => new GatehouseTerminator(context, count),
        _ => throw new ArgumentException($"unknown peer '{name}' (nginx, haproxy, caddy, gatehouse)"),
    };

    /// <summary>Writes the config (and whatever the peer needs on disk) before the clock starts.</summary>
    public abstract Task PrepareAsync();

    /// <summary>Starts the process (pinned to the proxy core); the start-up clock runs from here.</summary>
    public void Start()
    {
        var (file, arguments, environment) = Command();
        var start = new ProcessStartInfo("taskset", ["-c", Context.Settings.ProxyCpu.ToString(CultureInfo.InvariantCulture), file, .. arguments])
        {
            WorkingDirectory = Directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("GATEHOUSE_", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(name); // measure the config written here, nothing else
        }

        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        var log = new StreamWriter(LogPath) { AutoFlush = true };
        var process = Process.Start(start) ?? throw new InvalidOperationException($"{Name} did not start");
        Context.Started.Add(process.Id, Path.GetFileName(file)[..Math.Min(15, Path.GetFileName(file).Length)]);
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (log) { log.WriteLine(e.Data); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (log) { log.WriteLine(e.Data); } } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        Process = process;
    }

    /// <summary>Changes the certificate of name <paramref name="index"/> the peer's way. The clock runs from just
    /// before the call; preparation that an operator does beforehand (writing the new files) happens in
    /// <see cref="PrepareChangeAsync"/>.</summary>
    public abstract Task ChangeCertificateAsync(int index, string variant);

    /// <summary>Writes what the change needs before the clock starts (the new PEM file, for the peers that read files).</summary>
    public virtual Task PrepareChangeAsync(int index)
    {
        Context.Pki.WriteLeaf(index);
        return Task.CompletedTask;
    }

    /// <summary>Waits until the peer is back to its steady process set after a reload (old workers gone).</summary>
    public virtual Task SettleAsync() => Task.CompletedTask;

    /// <summary>The change variants this peer is measured with (row 6).</summary>
    public virtual IReadOnlyList<string> ChangeVariants => ["default"];

    public string LogTail(int lines = 30)
    {
        try
        {
            using var stream = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            return string.Join('\n', reader.ReadToEnd().Split('\n').TakeLast(lines));
        }
        catch (IOException)
        {
            return "(no log)";
        }
    }

    public virtual async ValueTask DisposeAsync()
    {
        if (Process is { } process)
        {
            var tree = ProcTree.Pids(process.Id);
            await ProcessStop.TerminateAsync(process, TimeSpan.FromSeconds(10));
            foreach (var pid in tree.Where(p => p != process.Id))
            {
                try
                {
                    using var child = System.Diagnostics.Process.GetProcessById(pid);
                    child.Kill();
                }
                catch (ArgumentException)
                {
                    // already gone
                }
                catch (InvalidOperationException)
                {
                    // already gone
                }
            }

            process.Dispose();
            Process = null;
        }
    }

    protected abstract (string File, string[] Arguments, Dictionary<string, string> Environment) Command();

    protected static void Replace(string path, string text)
    {
        File.WriteAllText(path + ".tmp", text);
        File.Move(path + ".tmp", path, overwrite: true);
    }

    protected static async Task RunAsync(string file, params string[] arguments)
    {
        var start = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = System.Diagnostics.Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} exited with {process.ExitCode}: {await output}{await error}");
        }
    }
}

/// <summary>Debian's nginx: one worker, every name its own server block with the shared PEM file as certificate and
/// key, HTTP/2 on, upstream keep-alive 128, session tickets on (nginx default), no access log.</summary>
internal sealed class NginxTerminator(BenchContext context, int count) : Terminator(context, "nginx", count)
{
    private string Config => Path.Combine(Directory, "nginx.conf");

    public override async Task PrepareAsync()
    {
        var temp = Path.Combine(Directory, "tmp");
        System.IO.Directory.CreateDirectory(temp);
        var servers = new StringBuilder();
        for (var i = 0; i < Count; i++)
        {
            var pem = Context.Pki.PemPath(i);
            servers.Append(CultureInfo.InvariantCulture, $$"""
                  server {
                    listen 127.0.0.1:{{Port}} ssl http2{{(i == 0 ? " backlog=4096" : "")}};
                    server_name {{Pki.Name(i)}};
                    ssl_certificate {{pem}};
                    ssl_certificate_key {{pem}};
                    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; }
                  }

                """);
        }

        await File.WriteAllTextAsync(Config, $$"""
            daemon off;
            master_process on;
            worker_processes 1;
            worker_shutdown_timeout 2s;
            pid {{Directory}}/nginx.pid;
            error_log {{Directory}}/error.log warn;
            events { worker_connections 8192; }
            http {
              access_log off;
              client_body_temp_path {{temp}}/body;
              proxy_temp_path {{temp}}/proxy;
              fastcgi_temp_path {{temp}}/fastcgi;
              uwsgi_temp_path {{temp}}/uwsgi;
              scgi_temp_path {{temp}}/scgi;
              keepalive_requests 10000000;
              keepalive_timeout 120s;
              http2_max_requests 10000000;
              server_names_hash_max_size 1048576;
              server_names_hash_bucket_size 128;
              ssl_protocols TLSv1.2 TLSv1.3;
              upstream backend { server 127.0.0.1:{{Context.BackendPort}}; keepalive 128; }
            {{servers}}}

            """);
    }

    public override IReadOnlyList<string> ChangeVariants => ["reload"];

    public override Task ChangeCertificateAsync(int index, string variant) =>
        RunAsync("nginx", "-p", Directory, "-c", Config, "-e", Path.Combine(Directory, "error.log"), "-s", "reload");

    public override async Task SettleAsync()
    {
        var clock = Stopwatch.StartNew();
        while (ProcStats.Children(Pid, "nginx").Length != 1 && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(10);
        }
    }

    protected override (string, string[], Dictionary<string, string>) Command() =>
        ("/usr/sbin/nginx", ["-p", Directory, "-c", Config, "-e", Path.Combine(Directory, "error.log")], []);
}

/// <summary>
/// Debian's HAProxy in master-worker mode (<c>-W</c>), <c>nbthread 1</c>, every PEM file in one crt-list, ALPN h2 and
/// http/1.1, TLS 1.2 minimum, HTTP keep-alive to the backend (HAProxy's default, with connection reuse), no log. Two
/// ways to change a certificate: a reload (SIGUSR2 to the master: a new worker loads everything) and the runtime API
/// (<c>set ssl cert</c> + <c>commit ssl cert</c> on the stats socket).
/// </summary>
internal sealed class HaproxyTerminator(BenchContext context, int count) : Terminator(context, "haproxy", count)
{
    private string Socket => Path.Combine(Directory, "admin.sock");

    public override async Task PrepareAsync()
    {
        var list = Path.Combine(Directory, "crt-list.txt");
        await File.WriteAllLinesAsync(list, Enumerable.Range(0, Count).Select(Context.Pki.PemPath));
        await File.WriteAllTextAsync(Path.Combine(Directory, "haproxy.cfg"), $$"""
            global
                nbthread 1
                maxconn 8000
                stats socket {{Socket}} mode 600 level admin expose-fd listeners
                ssl-default-bind-options ssl-min-ver TLSv1.2
            defaults
                mode http
                option http-keep-alive
                http-reuse safe
                timeout connect 5s
                timeout client 120s
                timeout server 120s
                timeout http-keep-alive 120s
            frontend edge
                bind 127.0.0.1:{{Port}} ssl crt-list {{list}} alpn h2,http/1.1
                default_backend app
            backend app
                server b1 127.0.0.1:{{Context.BackendPort}} maxconn 1000

            """);
    }

    public override IReadOnlyList<string> ChangeVariants => ["reload", "runtime-api"];

    public override async Task ChangeCertificateAsync(int index, string variant)
    {
        if (variant == "reload")
        {
            await RunAsync("kill", "-USR2", Pid.ToString(CultureInfo.InvariantCulture));
            return;
        }

        var path = Context.Pki.PemPath(index);
        var pem = await File.ReadAllTextAsync(path);
        var set = await SocketCommandAsync($"set ssl cert {path} <<\n{pem.TrimEnd()}\n\n");
        var commit = await SocketCommandAsync($"commit ssl cert {path}\n");
        if (!commit.Contains("Success", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"HAProxy runtime API: {set.Trim()} / {commit.Trim()}");
        }
    }

    public override async Task SettleAsync()
    {
        var clock = Stopwatch.StartNew();
        while (ProcStats.Children(Pid, "haproxy").Length != 1 && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(10);
        }
    }

    protected override (string, string[], Dictionary<string, string>) Command() =>
        ("/usr/sbin/haproxy", ["-W", "-db", "-f", Path.Combine(Directory, "haproxy.cfg")], []);

    private async Task<string> SocketCommandAsync(string command)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(Socket));
        await socket.SendAsync(Encoding.ASCII.GetBytes(command));
        var answer = new StringBuilder();
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        int read;
        while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0)
        {
            answer.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }

        return answer.ToString();
    }
}

/// <summary>
/// Debian's Caddy (Go; GOMAXPROCS follows the one-core affinity), JSON config: one HTTP server on 127.0.0.1, automatic
/// HTTPS off (no ACME, no redirects), every PEM file in <c>tls.certificates.load_files</c>, one default TLS connection
/// policy (Caddy's defaults: TLS 1.2 + 1.3, h2 + http/1.1, session tickets on), <c>reverse_proxy</c> to the backend
/// (keep-alive by default), no access log. A certificate change is a <c>POST /load</c> of the config to the admin API
/// (with <c>Cache-Control: must-revalidate</c>, so Caddy reloads even though the JSON is unchanged).
/// </summary>
internal sealed class CaddyTerminator(BenchContext context, int count) : Terminator(context, "caddy", count)
{
    private readonly int _adminPort = Ports.Free();

    private string Config => Path.Combine(Directory, "caddy.json");

    public override async Task PrepareAsync()
    {
        var files = Enumerable.Range(0, Count).Select(i => new { certificate = Context.Pki.PemPath(i), key = Context.Pki.PemPath(i) });
        var config = new
        {
            admin = new { listen = $"127.0.0.1:{_adminPort}" },
            logging = new { logs = new { @default = new { level = "WARN" } } },
            apps = new
            {
                http = new
                {
                    servers = new
                    {
                        edge = new
                        {
                            listen = new[] { $"127.0.0.1:{Port}" },
                            automatic_https = new { disable = true },
                            tls_connection_policies = new[] { new { } },
                            routes = new[] { new { handle = new[] { new { handler = "reverse_proxy", upstreams = new[] { new { dial = $"127.0.0.1:{Context.BackendPort}" } } } } } },
                        },
                    },
                },
                tls = new { certificates = new { load_files = files } },
            },
        };
        await File.WriteAllTextAsync(Config, JsonSerializer.Serialize(config));
    }

    public override IReadOnlyList<string> ChangeVariants => ["admin-load"];

    public override async Task ChangeCertificateAsync(int index, string variant)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(120) };
        using var content = new StreamContent(File.OpenRead(Config));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{_adminPort}/load") { Content = content };
        request.Headers.CacheControl = new CacheControlHeaderValue { MustRevalidate = true };
        using var response = await http.SendAsync(request);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"Caddy /load: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }

    protected override (string, string[], Dictionary<string, string>) Command() =>
        ("/usr/bin/caddy", ["run", "--config", Config], new()
        {
            ["HOME"] = Directory,
            ["XDG_DATA_HOME"] = Path.Combine(Directory, "data"),
            ["XDG_CONFIG_HOME"] = Path.Combine(Directory, "config"),
        });
}

/// <summary>
/// <c>dotnet gatehouse.dll serve</c> (Release publish, no GATEHOUSE_* variable, <c>DOTNET_gcServer=0</c> and
/// <c>DOTNET_TieredPGO=1</c> as bench/tls runs it) on a data directory seeded with the same certificates as records
/// (<see cref="Pki.SeedGatehouseAsync"/>); the config has no sites (they are in the store). A certificate change is
/// <c>POST /v1/certificates/{name}/renew</c> through the admin API: Gatehouse's local CA issues a new certificate
/// (new key and serial) and the edge serves it.
/// </summary>
internal sealed class GatehouseTerminator(BenchContext context, int count) : Terminator(context, "gatehouse", count)
{
    private readonly int _adminPort = Ports.Free();
    private HttpClient? _admin;

    public string DataDirectory => Path.Combine(Directory, "data");

    /// <summary>Where the seeded store for <paramref name="count"/> names is kept across repetitions (seeding 100k
    /// takes a while); each start copies it.</summary>
    public static string SeedDirectory(BenchContext context, int count) => Path.Combine(context.Work, $"gatehouse-seed-n{count}");

    public override async Task PrepareAsync()
    {
        var seed = SeedDirectory(Context, Count);
        if (!System.IO.Directory.Exists(seed))
        {
            var clock = Stopwatch.StartNew();
            await Context.Pki.SeedGatehouseAsync(seed + ".tmp", Count, $"http://127.0.0.1:{Context.BackendPort}");
            System.IO.Directory.Move(seed + ".tmp", seed);
            Log.Line($"seeded a Gatehouse store with {Count:N0} sites and certificates in {clock.Elapsed.TotalSeconds:0.0} s");
        }

        System.IO.Directory.CreateDirectory(DataDirectory);
        foreach (var file in System.IO.Directory.GetFiles(seed))
        {
            File.Copy(file, Path.Combine(DataDirectory, Path.GetFileName(file)));
        }

        await File.WriteAllTextAsync(Path.Combine(Directory, "gatehouse.yaml"), $$"""
            dataDirectory: ./data
            edge: {address: 127.0.0.1, httpsPort: {{Port}}, httpPort: {{Ports.Free()}}}
            admin: {address: 127.0.0.1, port: {{_adminPort}}}
            sites: []

            """);
    }

    public override IReadOnlyList<string> ChangeVariants => ["admin-api-renew"];

    public override Task PrepareChangeAsync(int index) => AdminAsync();

    public override async Task ChangeCertificateAsync(int index, string variant)
    {
        var admin = await AdminAsync();
        using var response = await admin.PostAsync(new Uri($"v1/certificates/{Pki.Name(index)}/renew", UriKind.Relative), null);
        if (response.StatusCode != HttpStatusCode.Accepted)
        {
            throw new InvalidOperationException($"POST /v1/certificates/{Pki.Name(index)}/renew: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }

    public override async ValueTask DisposeAsync()
    {
        _admin?.Dispose();
        await base.DisposeAsync();
    }

    protected override (string, string[], Dictionary<string, string>) Command() =>
        ("dotnet", ["exec", Context.GatehouseDll, "serve", "--config", Path.Combine(Directory, "gatehouse.yaml")], new()
        {
            ["DOTNET_gcServer"] = "0",
            ["DOTNET_TieredPGO"] = "1",
            ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
            ["DOTNET_NOLOGO"] = "1",
            ["ASPNETCORE_ENVIRONMENT"] = "Production",
        });

    private async Task<HttpClient> AdminAsync()
    {
        if (_admin is not null)
        {
            return _admin;
        }

        var root = Path.Combine(DataDirectory, "local-ca-root.pem");
        var token = Path.Combine(DataDirectory, "admin.token");
        var clock = Stopwatch.StartNew();
        while (!File.Exists(root) || !File.Exists(token))
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(60))
            {
                throw new InvalidOperationException($"Gatehouse wrote no {root} / {token}; its log:\n{LogTail()}");
            }

            await Task.Delay(50);
        }

        var trust = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
        trust.CustomTrustStore.Add(X509Certificate2.CreateFromPem(await File.ReadAllTextAsync(root)));
        _admin = new HttpClient(new SocketsHttpHandler { SslOptions = new SslClientAuthenticationOptions { CertificateChainPolicy = trust } })
        {
            BaseAddress = new Uri($"https://127.0.0.1:{_adminPort}/"),
            Timeout = TimeSpan.FromSeconds(60),
        };
        _admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", (await File.ReadAllTextAsync(token)).Trim());
        return _admin;
    }
}

internal static class Ports
{
    public static int Free()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

internal static class Log
{
    public static void Line(string text) => Console.Error.WriteLine($"[edge-bench {DateTime.Now:HH:mm:ss}] {text}");
}

/// <summary>A process and its descendants, from /proc.</summary>
internal static class ProcTree
{
    public static List<int> Pids(int root)
    {
        var children = new Dictionary<int, List<int>>();
        foreach (var directory in System.IO.Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(directory), out var pid) && ProcStats.TryReadStat(pid, out _, out var parent, out _))
            {
                if (!children.TryGetValue(parent, out var list))
                {
                    children[parent] = list = [];
                }

                list.Add(pid);
            }
        }

        var result = new List<int>();
        var queue = new Queue<int>([root]);
        while (queue.Count > 0)
        {
            var pid = queue.Dequeue();
            result.Add(pid);
            foreach (var child in children.GetValueOrDefault(pid) ?? [])
            {
                queue.Enqueue(child);
            }
        }

        return result;
    }

    /// <summary>utime + stime of the process and its descendants, seconds.</summary>
    public static double CpuSeconds(int root) => Pids(root).Sum(ProcStats.CpuSeconds);

    /// <summary>Pss of /proc/PID/smaps_rollup summed over the process and its descendants, MiB: shared pages divided
    /// among the processes that map them (nginx's and HAProxy's master and worker share most of their certificates).</summary>
    public static double PssMiB(int root) => Pids(root).Sum(pid =>
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/smaps_rollup").FirstOrDefault(l => l.StartsWith("Pss:", StringComparison.Ordinal));
            return line is null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return 0;
        }
    }) / 1024.0;

    /// <summary>VmRSS summed over the process and its descendants, MiB.</summary>
    public static double RssMiB(int root) => Pids(root).Sum(pid =>
    {
        try
        {
            return ProcStats.Memory(pid).RssKiB;
        }
        catch (IOException)
        {
            return 0;
        }
    }) / 1024.0;
}
