// `dotnet gatehouse.dll serve` as the benches run it (no GATEHOUSE_* variable, its JSON log kept and parsed) and its
// admin API (compiled into each bench, see their .csproj).
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;

/// <summary>The admin API of the Gatehouse under test (trusting only its local CA root, with its bearer token).</summary>
internal sealed class AdminClient : IDisposable
{
    private readonly HttpClient _http;

    private AdminClient(HttpClient http) => _http = http;

    public static async Task<AdminClient> ConnectAsync(GatehouseProcess gatehouse, string dataDirectory, int port, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        var rootPath = Path.Combine(dataDirectory, "local-ca-root.pem");
        var tokenPath = Path.Combine(dataDirectory, "admin.token");
        while (!File.Exists(rootPath) || !File.Exists(tokenPath))
        {
            Check(gatehouse, clock, timeout);
            await Task.Delay(50);
        }

        var trust = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
        trust.CustomTrustStore.Add(X509Certificate2.CreateFromPem(await File.ReadAllTextAsync(rootPath)));
        var http = new HttpClient(new SocketsHttpHandler { SslOptions = new SslClientAuthenticationOptions { CertificateChainPolicy = trust } })
        {
            BaseAddress = new Uri($"https://127.0.0.1:{port}/"),
            Timeout = TimeSpan.FromSeconds(30),
        };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", (await File.ReadAllTextAsync(tokenPath)).Trim());
        while (true)
        {
            Check(gatehouse, clock, timeout);
            try
            {
                using var ready = await http.GetAsync(new Uri("readyz", UriKind.Relative));
                if (ready.IsSuccessStatusCode)
                {
                    return new AdminClient(http);
                }
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }

            await Task.Delay(50);
        }
    }

    /// <summary>Adds a site with one name and a backend nobody listens on; <paramref name="issuer"/> null: the
    /// default issuer (the local CA).</summary>
    public async Task AddSiteAsync(string host, string? issuer = null)
    {
        var issuers = issuer is null ? "" : $$""","issuers":["{{issuer}}"]""";
        var body = $$"""{"hosts":["{{host}}"],"backends":["http://127.0.0.1:9"]{{issuers}}}""";
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await _http.PostAsync(new Uri("v1/sites", UriKind.Relative), content);
        await ExpectAsync(response, HttpStatusCode.Created, $"POST /v1/sites for {host}");
    }

    /// <summary>Makes the certificate that covers <paramref name="host"/> due now (POST /v1/certificates/HOST/renew).</summary>
    public async Task RenewAsync(string host)
    {
        using var response = await _http.PostAsync(new Uri($"v1/certificates/{Uri.EscapeDataString(host)}/renew", UriKind.Relative), null);
        await ExpectAsync(response, HttpStatusCode.Accepted, $"POST /v1/certificates/{host}/renew");
    }

    public void Dispose() => _http.Dispose();

    private static async Task ExpectAsync(HttpResponseMessage response, HttpStatusCode expected, string what)
    {
        if (response.StatusCode != expected)
        {
            throw new InvalidOperationException($"{what}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }

    private static void Check(GatehouseProcess gatehouse, Stopwatch clock, TimeSpan timeout)
    {
        if (gatehouse.HasExited || clock.Elapsed > timeout)
        {
            throw new InvalidOperationException($"Gatehouse did not become ready within {timeout.TotalSeconds:0} s; its output:\n{string.Join('\n', gatehouse.Tail(40))}");
        }
    }
}

/// <summary>A line of Gatehouse's JSON console log.</summary>
internal sealed record LogEvent(DateTimeOffset Timestamp, int EventId, string Level, string Category, string Message, IReadOnlyDictionary<string, string> State)
{
    public string? this[string key] => State.GetValueOrDefault(key);

    public static LogEvent? TryParse(string line)
    {
        try
        {
            using var json = JsonDocument.Parse(line);
            var root = json.RootElement;
            var state = new Dictionary<string, string>(StringComparer.Ordinal);
            if (root.TryGetProperty(nameof(State), out var values) && values.ValueKind == JsonValueKind.Object)
            {
                foreach (var property in values.EnumerateObject())
                {
                    state[property.Name] = property.Value.ValueKind == JsonValueKind.String ? property.Value.GetString()! : property.Value.GetRawText();
                }
            }

            return new LogEvent(
                DateTimeOffset.Parse(root.GetProperty(nameof(Timestamp)).GetString()!, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal),
                root.GetProperty(nameof(EventId)).GetInt32(),
                root.GetProperty("LogLevel").GetString() ?? "",
                root.GetProperty(nameof(Category)).GetString() ?? "",
                root.GetProperty(nameof(Message)).GetString() ?? "",
                state);
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or FormatException or InvalidOperationException)
        {
            return null;
        }
    }
}

/// <summary>`dotnet gatehouse.dll serve` with no GATEHOUSE_* variable; its log is kept (raw in a file, parsed in memory).</summary>
internal sealed class GatehouseProcess : IAsyncDisposable
{
    /// <summary>Event 3002, "Issued certificate {CertificateId} ...".</summary>
    public const int IssuedEvent = 3002;

    private readonly Process _process;
    private readonly StreamWriter _log;
    private readonly List<LogEvent> _events = [];
    private readonly List<string> _lines = [];
    private readonly ConcurrentDictionary<string, TaskCompletionSource<LogEvent>> _issued = new(StringComparer.Ordinal);

    private GatehouseProcess(Process process, StreamWriter log)
    {
        _process = process;
        _log = log;
    }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Starts <c>dotnet exec DLL serve</c>; with <paramref name="cpus"/> (a taskset list such as "0") under
    /// <c>taskset -c</c>, so the runtime sizes its thread pool for those cores from the first instruction.</summary>
    public static GatehouseProcess Start(string dll, string directory, string config, string logPath, string? cpus = null)
    {
        string[] command = ["dotnet", "exec", dll, "serve", "--config", config];
        var start = new ProcessStartInfo(cpus is null ? command[0] : "taskset", cpus is null ? command[1..] : ["-c", cpus, .. command])
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("GATEHOUSE_", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(name); // measure the config written by the bench, nothing else
        }

        var log = new StreamWriter(logPath) { AutoFlush = true };
        var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start");
        var gatehouse = new GatehouseProcess(process, log);
        process.OutputDataReceived += (_, e) => gatehouse.OnLine(e.Data, stderr: false);
        process.ErrorDataReceived += (_, e) => gatehouse.OnLine(e.Data, stderr: true);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return gatehouse;
    }

    /// <summary>Completes when "Issued" is logged for certificate <paramref name="id"/> (the site's first host).</summary>
    public Task<LogEvent> IssuedSignal(string id) => _issued.GetOrAdd(id, _ => new TaskCompletionSource<LogEvent>(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    public List<LogEvent> Events()
    {
        lock (_events)
        {
            return [.. _events];
        }
    }

    public List<string> Tail(int count)
    {
        lock (_events)
        {
            return [.. _lines.TakeLast(count)];
        }
    }

    public async ValueTask DisposeAsync()
    {
        await ProcessStop.TerminateAsync(_process, TimeSpan.FromSeconds(20));
        _process.Dispose();
        lock (_events)
        {
            _log.Dispose();
        }
    }

    private void OnLine(string? line, bool stderr)
    {
        if (line is null)
        {
            return;
        }

        var parsed = stderr ? null : LogEvent.TryParse(line);
        lock (_events)
        {
            _log.WriteLine(stderr ? "stderr: " + line : line);
            _lines.Add(line);
            if (_lines.Count > 2000)
            {
                _lines.RemoveRange(0, 1000);
            }

            if (parsed is not null)
            {
                _events.Add(parsed);
            }
        }

        if (parsed is { EventId: IssuedEvent } && parsed["CertificateId"] is { } id)
        {
            _issued.GetOrAdd(id, _ => new TaskCompletionSource<LogEvent>(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult(parsed);
        }
    }
}
