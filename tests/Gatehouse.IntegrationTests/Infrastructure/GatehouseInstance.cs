using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Hosting;
using Microsoft.Extensions.Logging;

namespace Gatehouse.IntegrationTests.Infrastructure;

/// <summary>
/// A real Gatehouse server on loopback (Kestrel, SQLite, the local CA), with its own data directory and ports, and
/// clients that reach it by name the way browsers do: the URL's host is the SNI name, the socket goes to 127.0.0.1.
/// </summary>
public sealed class GatehouseInstance : IAsyncDisposable
{
    private GatehouseServer? _server;

    private GatehouseInstance(string directory, int httpsPort, int httpPort, int adminPort)
    {
        Directory = directory;
        HttpsPort = httpsPort;
        HttpPort = httpPort;
        AdminPort = adminPort;
    }

    public string Directory { get; }

    public string DataDirectory => Path.Combine(Directory, "data");

    public string ConfigPath => Path.Combine(Directory, "gatehouse.yaml");

    public int HttpsPort { get; }

    public int HttpPort { get; }

    public int AdminPort { get; }

    public GatehouseServer Server => _server ?? throw new InvalidOperationException("not running");

    /// <summary>Every log line the server wrote (formatted messages and exception text).</summary>
    public ConcurrentQueue<string> Logs { get; } = new();

    public X509Certificate2 Root => X509Certificate2.CreateFromPem(File.ReadAllText(Path.Combine(DataDirectory, "local-ca-root.pem")));

    public string AdminToken => File.ReadAllText(Path.Combine(DataDirectory, "admin.token")).Trim();

    /// <summary>Creates an instance in a new directory whose config has <paramref name="sitesYaml"/> (a YAML list);
    /// <paramref name="edgeYaml"/> adds keys to the <c>edge</c> map (e.g. <c>handshakeTimeout: 1s</c>).</summary>
    public static async Task<GatehouseInstance> StartAsync(string sitesYaml = "[]", string extraYaml = "", string edgeYaml = "")
    {
        var instance = Create(sitesYaml, extraYaml, edgeYaml);
        await instance.RestartAsync();
        return instance;
    }

    /// <summary>Like <see cref="StartAsync"/> without starting, so a test can fill the data directory first.</summary>
    public static GatehouseInstance Create(string sitesYaml = "[]", string extraYaml = "", string edgeYaml = "")
    {
        var directory = Path.Combine(Path.GetTempPath(), "gatehouse-it-" + Guid.NewGuid().ToString("N")[..12]);
        System.IO.Directory.CreateDirectory(directory);
        var instance = new GatehouseInstance(directory, Ports.Free(), Ports.Free(), Ports.Free()) { _edgeYaml = edgeYaml };
        instance.WriteConfig(sitesYaml, extraYaml);
        return instance;
    }

    private string _edgeYaml = "";

    /// <summary>The options the server starts with (paths of its store and master key among them).</summary>
    public GatehouseOptions LoadOptions() => Load(NewConfiguration());

    /// <summary>Writes the config file (the running server picks site changes up live).</summary>
    public void WriteConfig(string sitesYaml, string extraYaml = "")
    {
        var yaml = $"""
            dataDirectory: ./data
            edge: {"{"}address: 127.0.0.1, httpsPort: {HttpsPort}, httpPort: {HttpPort}{(_edgeYaml.Length > 0 ? ", " + _edgeYaml : "")}{"}"}
            admin: {"{"}address: 127.0.0.1, port: {AdminPort}{"}"}
            {extraYaml}
            sites: {sitesYaml}

            """;
        var temp = ConfigPath + ".tmp";
        File.WriteAllText(temp, yaml);
        File.Move(temp, ConfigPath, overwrite: true);
    }

    /// <summary>Starts (again) on the same data directory.</summary>
    public async Task RestartAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        var configuration = NewConfiguration();
        _server = await GatehouseServer.StartAsync(Load(configuration), configuration, logging => logging.AddProvider(new ListLoggerProvider(Logs)));
    }

    private GatehouseConfiguration NewConfiguration() => new(ConfigPath, [], new Dictionary<string, string?>());

    private static GatehouseOptions Load(GatehouseConfiguration configuration)
    {
        var errors = new List<string>();
        return configuration.Load(errors) ?? throw new InvalidOperationException(string.Join("\n", errors));
    }

    public async Task StopAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
            _server = null;
        }

        if (_process is { } process)
        {
            _process = null;
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }

            process.Dispose();
        }
    }

    private System.Diagnostics.Process? _process;

    /// <summary>Whether this instance runs as its own process (<see cref="StartProcessAsync"/>) that is alive.</summary>
    public bool IsRunning => _process is { HasExited: false } || _server is not null;

    /// <summary>
    /// Starts <c>gatehouse serve</c> as its own process, so that a test can SIGKILL it; its output lines go to
    /// <see cref="Logs"/>. Returns once the admin API answers <c>/readyz</c>.
    /// </summary>
    public async Task StartProcessAsync(TimeSpan? timeout = null)
    {
        var start = new System.Diagnostics.ProcessStartInfo("dotnet") { WorkingDirectory = Directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "exec", Tools.GatehouseDll, "serve", "--config", ConfigPath })
        {
            start.ArgumentList.Add(arg);
        }

        var process = System.Diagnostics.Process.Start(start)!;
        process.OutputDataReceived += (_, e) => Logs.Enqueue(e.Data ?? "");
        process.ErrorDataReceived += (_, e) => Logs.Enqueue(e.Data ?? "");
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
        var ready = await EventuallyAsync(async () =>
        {
            if (process.HasExited || !File.Exists(Path.Combine(DataDirectory, "local-ca-root.pem")) || !File.Exists(Path.Combine(DataDirectory, "admin.token")))
            {
                return process.HasExited;
            }

            try
            {
                using var admin = AdminClient(withToken: false);
                using var response = await admin.GetAsync("readyz");
                return response.StatusCode == HttpStatusCode.OK;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, timeout ?? TimeSpan.FromSeconds(60));
        Xunit.Assert.True(ready && !process.HasExited, $"gatehouse serve in {Directory} did not become ready; output:\n{string.Join('\n', Logs.TakeLast(30))}");
    }

    /// <summary>SIGKILLs the process started by <see cref="StartProcessAsync"/>: no shutdown, no lease revoked.</summary>
    public void Kill()
    {
        var process = _process ?? throw new InvalidOperationException("not running as a process");
        process.Kill();
        process.WaitForExit();
    }

    /// <summary>Whether this instance logged that it is issuing certificate <paramref name="id"/> (event 3001).</summary>
    public bool LoggedIssuing(string id) => Logs.Any(line => line.Contains($"Issuing certificate {id} for", StringComparison.Ordinal));

    /// <summary>An HTTPS client for the edge that trusts only the local CA root, or <paramref name="trust"/>.</summary>
    public HttpClient EdgeClient(bool http2 = false, X509ChainPolicy? trust = null) => Client(HttpsPort, http2, trust);

    /// <summary>A client for the admin API with (or without) the bearer token.</summary>
    public HttpClient AdminClient(string? token = null, bool withToken = true)
    {
        var client = Client(AdminPort, false);
        client.BaseAddress = new Uri($"https://localhost:{AdminPort}/");
        if (withToken)
        {
            client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token ?? AdminToken);
        }

        return client;
    }

    /// <summary>A plain-HTTP client for the port-80 listener; does not follow redirects.</summary>
    public HttpClient PlainClient() => new(new SocketsHttpHandler
    {
        AllowAutoRedirect = false,
        ConnectCallback = (_, ct) => ConnectAsync(HttpPort, ct),
    });

    /// <summary>Completes a TLS handshake with SNI <paramref name="serverName"/>, trusting the local CA root unless
    /// <paramref name="trust"/> says otherwise; the caller checks the result.</summary>
    public async Task<SslStream> HandshakeAsync(string serverName, SslApplicationProtocol? alpn = null, X509ChainPolicy? trust = null)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, HttpsPort);
        var ssl = new SslStream(tcp.GetStream(), leaveInnerStreamOpen: false);
        await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = serverName,
            ApplicationProtocols = alpn is { } a ? [a] : null,
            CertificateChainPolicy = trust ?? TrustOnly(Root),
        });
        return ssl;
    }

    /// <summary>Polls HTTPS GETs of <c>https://HOST/</c> until each host answers 200 with a certificate that
    /// <paramref name="trust"/> (default: the local CA) accepts; fails the test naming the host and the last log lines.</summary>
    public async Task WaitUntilServedAsync(IEnumerable<string> hosts, X509ChainPolicy? trust = null, TimeSpan? timeout = null)
    {
        using var edge = EdgeClient(trust: trust);
        foreach (var host in hosts)
        {
            var served = await EventuallyAsync(async () =>
            {
                try
                {
                    using var response = await edge.GetAsync($"https://{host}:{HttpsPort}/");
                    return response.StatusCode == HttpStatusCode.OK;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            }, timeout ?? TimeSpan.FromSeconds(30));
            Xunit.Assert.True(served, $"{host} was not served; logs:\n{string.Join('\n', Logs.TakeLast(20))}");
        }
    }

    /// <summary>Handshakes until the edge presents, for <paramref name="host"/>, a leaf <paramref name="trust"/> accepts
    /// whose serial differs from <paramref name="previousSerial"/>; returns it.</summary>
    public async Task<X509Certificate2> WaitForNewLeafAsync(string host, X509ChainPolicy trust, string? previousSerial, TimeSpan timeout)
    {
        X509Certificate2? leaf = null;
        var found = await EventuallyAsync(async () =>
        {
            try
            {
                await using var tls = await HandshakeAsync(host, trust: trust);
                leaf = new X509Certificate2(tls.RemoteCertificate!);
                return leaf.SerialNumber != previousSerial;
            }
            catch (Exception ex) when (ex is IOException or System.Security.Authentication.AuthenticationException)
            {
                return false;
            }
        }, timeout);
        Xunit.Assert.True(found, $"{host}: no {(previousSerial is null ? "" : "new ")}certificate; logs:\n{string.Join('\n', Logs.TakeLast(15))}");
        return leaf!;
    }

    /// <summary>Opens this instance's key ring over <paramref name="store"/> with its key file, as an operator holding
    /// the key file could (the caller disposes the ring; the provider goes with it).</summary>
    public async Task<Gatehouse.Keys.KeyRing> OpenKeyRingAsync(Gatehouse.Storage.IStore store)
    {
        var providers = new Dictionary<string, Gatehouse.Keys.IMasterKeyProvider> { ["local"] = Gatehouse.Keys.SoftwareKeyFileProvider.OpenOrCreate("local", Path.Combine(DataDirectory, "master.key")) };
        return await Gatehouse.Keys.KeyRingStore.OpenOrCreateAsync(store, providers, "local", TimeProvider.System, default);
    }

    /// <summary>Polls until <paramref name="condition"/> holds or <paramref name="timeout"/> passes.</summary>
    public static async Task<bool> EventuallyAsync(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (await condition())
            {
                return true;
            }

            if (DateTime.UtcNow > deadline)
            {
                return false;
            }

            await Task.Delay(25);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    internal static X509ChainPolicy TrustOnly(X509Certificate2 root)
    {
        var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
        policy.CustomTrustStore.Add(root);
        return policy;
    }

    private HttpClient Client(int port, bool http2, X509ChainPolicy? trust = null)
    {
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            PooledConnectionLifetime = TimeSpan.FromSeconds(1),
            ConnectCallback = (_, ct) => ConnectAsync(port, ct),
            SslOptions = new SslClientAuthenticationOptions { CertificateChainPolicy = trust ?? TrustOnly(Root) },
        };
        var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(20) };
        if (http2)
        {
            client.DefaultRequestVersion = HttpVersion.Version20;
            client.DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        }

        return client;
    }

    private static async ValueTask<Stream> ConnectAsync(int port, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(IPAddress.Loopback, port, cancellationToken);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}

/// <summary>
/// Free loopback ports for the servers a test starts. They come from below Linux's ephemeral range (32768–60999),
/// so the many client connections the tests make can never take a port between the moment it is picked and the
/// moment a server binds it, and each call in this process gets a different one.
/// </summary>
public static class Ports
{
    private const int First = 20_000;
    private const int Count = 12_000;
    private static int _next = Random.Shared.Next(Count);

    public static int Free()
    {
        for (var attempt = 0; attempt < Count; attempt++)
        {
            var port = First + (Interlocked.Increment(ref _next) % Count);
            try
            {
                using var listener = new TcpListener(IPAddress.Loopback, port);
                listener.Start();
                return port;
            }
            catch (SocketException)
            {
                // in use: try the next one
            }
        }

        throw new InvalidOperationException("No free loopback port below the ephemeral range.");
    }
}

/// <summary>Collects log lines, exceptions included, so tests can check what was (and was not) logged.</summary>
internal sealed class ListLoggerProvider(ConcurrentQueue<string> lines) : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => new ListLogger(categoryName, lines);

    public void Dispose()
    {
    }

    private sealed class ListLogger(string category, ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Debug;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            lines.Enqueue($"{logLevel} {category}[{eventId.Id}] {formatter(state, exception)} {exception}");
    }
}
