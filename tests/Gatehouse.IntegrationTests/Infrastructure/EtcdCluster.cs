using System.Diagnostics;
using System.Globalization;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;

namespace Gatehouse.IntegrationTests.Infrastructure;

/// <summary>
/// A real etcd cluster on loopback (Debian <c>etcd-server</c> 3.4, <c>/usr/bin/etcd</c>): each member has its own
/// free client and peer ports, its own data directory under one temp directory and its own log file. Heartbeat
/// 50 ms and election timeout 500 ms, so a new leader is elected within about a second. Members can be killed
/// (SIGKILL), stopped (SIGTERM) and started again on the same data directory. Everything is killed and deleted on
/// dispose. Never uses etcd's default ports, so a system etcd started by the Debian package does not matter.
/// With <c>tls</c>, clients must speak TLS to a server certificate from a throwaway CA and show a client
/// certificate from it (<see cref="CaFile"/>, <see cref="ClientCertificateFile"/>, <see cref="ClientKeyFile"/>).
/// </summary>
public sealed class EtcdCluster : IAsyncDisposable
{
    private const string EtcdBinary = "/usr/bin/etcd";
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    private readonly Member[] _members;
    private readonly HttpClient _http;
    private readonly bool _tls;

    private EtcdCluster(string directory, int size, bool tls, string[] extraArguments)
    {
        Directory = directory;
        _tls = tls;
        var scheme = tls ? "https" : "http";
        var token = "gatehouse-it-" + Guid.NewGuid().ToString("N")[..8];
        _members = [.. Enumerable.Range(0, size).Select(i => new Member(i, Ports.Free(), Ports.Free(), directory, scheme))];
        var initialCluster = string.Join(',', _members.Select(m => $"{m.Name}=http://127.0.0.1:{m.PeerPort}"));
        string[] tlsArguments = [];
        if (tls)
        {
            WriteCertificates();
            tlsArguments = ["--cert-file", Path.Combine(directory, "server.pem"), "--key-file", Path.Combine(directory, "server.key"), "--client-cert-auth", "--trusted-ca-file", CaFile];
        }

        _http = CreateHttpClient();
        foreach (var member in _members)
        {
            member.Arguments =
            [
                .. tlsArguments,
                .. extraArguments,
                "--name", member.Name,
                "--data-dir", member.DataDirectory,
                "--listen-client-urls", member.Endpoint.GetLeftPart(UriPartial.Authority),
                "--advertise-client-urls", member.Endpoint.GetLeftPart(UriPartial.Authority),
                "--listen-peer-urls", $"http://127.0.0.1:{member.PeerPort}",
                "--initial-advertise-peer-urls", $"http://127.0.0.1:{member.PeerPort}",
                "--initial-cluster", initialCluster,
                "--initial-cluster-state", "new",
                "--initial-cluster-token", token,
                "--heartbeat-interval", "50",
                "--election-timeout", "500",
                "--logger", "zap",
                "--log-outputs", member.LogPath,
            ];
        }
    }

    /// <summary>The temp directory holding every member's data directory and log.</summary>
    public string Directory { get; }

    /// <summary>The members' client URLs, by member index.</summary>
    public IReadOnlyList<Uri> Endpoints => [.. _members.Select(m => m.Endpoint)];

    /// <summary>The members' data directories, by member index.</summary>
    public IReadOnlyList<string> DataDirectories => [.. _members.Select(m => m.DataDirectory)];

    /// <summary>PEM of the CA behind the server and client certificates (with <c>tls</c>).</summary>
    public string CaFile => Path.Combine(Directory, "ca.pem");

    /// <summary>PEM client certificate the members accept (with <c>tls</c>).</summary>
    public string ClientCertificateFile => Path.Combine(Directory, "client.pem");

    public string ClientKeyFile => Path.Combine(Directory, "client.key");

    /// <summary><c>user:password</c> for etcdctl once authentication is on.</summary>
    public string? EtcdctlUser { get; set; }

    /// <summary>Whether member <paramref name="index"/>'s process is running.</summary>
    public bool IsRunning(int index) => _members[index].Process is { HasExited: false };

    /// <summary>Starts a cluster of <paramref name="size"/> members and waits until every member is healthy.</summary>
    /// <param name="size">How many members.</param>
    /// <param name="tls">Client URLs are https and want a client certificate.</param>
    /// <param name="extraArguments">More etcd flags for every member.</param>
    /// <param name="parentDirectory">Where the cluster's directory is made (default: the temp directory).</param>
    public static async Task<EtcdCluster> StartAsync(int size = 3, bool tls = false, string[]? extraArguments = null, string? parentDirectory = null)
    {
        if (!File.Exists(EtcdBinary))
        {
            throw new InvalidOperationException($"{EtcdBinary} is missing; run: apt-get install etcd-server etcd-client");
        }

        var directory = Path.Combine(parentDirectory ?? Path.GetTempPath(), "gatehouse-etcd-" + Guid.NewGuid().ToString("N")[..12]);
        System.IO.Directory.CreateDirectory(directory);
        var cluster = new EtcdCluster(directory, size, tls, extraArguments ?? []);
        try
        {
            await cluster.StartAllAsync();
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>Kills member <paramref name="index"/> with SIGKILL (no goodbye to its peers or clients).</summary>
    public void KillMember(int index)
    {
        var process = _members[index].Process;
        if (process is { HasExited: false })
        {
            process.Kill();
            process.WaitForExit(10_000);
        }
    }

    /// <summary>Stops member <paramref name="index"/> with SIGTERM and waits for it to exit (SIGKILL after 10 s).</summary>
    public async Task StopMemberAsync(int index)
    {
        var process = _members[index].Process;
        if (process is not { HasExited: false })
        {
            return;
        }

        await Tools.RunAsync("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)], Directory);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            KillMember(index);
        }
    }

    /// <summary>Starts member <paramref name="index"/> again on its data directory; waits until it listens (not
    /// until it is healthy: alone, without a quorum, it cannot be).</summary>
    public async Task StartMemberAsync(int index)
    {
        var member = _members[index];
        if (member.Process is { HasExited: false })
        {
            return;
        }

        member.Process?.Dispose();
        var start = new ProcessStartInfo(EtcdBinary) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in member.Arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("etcd did not start");

        // Everything goes to the log file; what little etcd prints before its logger is up is drained here.
        process.OutputDataReceived += static (_, _) => { };
        process.ErrorDataReceived += static (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        member.Process = process;

        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"etcd member {member.Name} exited with {process.ExitCode}:\n{LogTail(index)}");
            }

            try
            {
                using var tcp = new System.Net.Sockets.TcpClient();
                await tcp.ConnectAsync(System.Net.IPAddress.Loopback, member.ClientPort);
                return;
            }
            catch (System.Net.Sockets.SocketException) when (deadline.Elapsed < StartTimeout)
            {
                await Task.Delay(20);
            }
        }
    }

    /// <summary>Stops every member (SIGTERM), one after the other: stopped all at once, members wait seconds for
    /// each other on the way out.</summary>
    public async Task StopAllAsync()
    {
        for (var i = 0; i < _members.Length; i++)
        {
            await StopMemberAsync(i);
        }
    }

    /// <summary>Starts every member that is not running and waits until all are healthy.</summary>
    public async Task StartAllAsync()
    {
        await Task.WhenAll(Enumerable.Range(0, _members.Length).Select(StartMemberAsync));
        await WaitHealthyAsync();
    }

    /// <summary>Waits until every running member reports <c>/health</c> true (it has a leader and answers).</summary>
    public async Task WaitHealthyAsync()
    {
        var deadline = Stopwatch.StartNew();
        foreach (var member in _members.Where(m => m.Process is { HasExited: false }))
        {
            while (!await IsHealthyAsync(member))
            {
                if (deadline.Elapsed > StartTimeout)
                {
                    throw new TimeoutException($"etcd member {member.Name} is not healthy after {StartTimeout.TotalSeconds} s:\n{LogTail(member.Index)}");
                }

                await Task.Delay(50);
            }
        }
    }

    /// <summary>The index of the current leader, asked of the running members (<c>etcdctl endpoint status</c>).</summary>
    public async Task<int> LeaderIndexAsync()
    {
        var running = _members.Where(m => m.Process is { HasExited: false }).ToList();
        var result = await EtcdctlAsync(["endpoint", "status", "-w", "json"], running.Select(m => m.Endpoint));
        using var json = JsonDocument.Parse(result.StandardOutput);
        foreach (var status in json.RootElement.EnumerateArray())
        {
            var leader = status.GetProperty("Status").GetProperty("leader").GetUInt64();
            var self = status.GetProperty("Status").GetProperty("header").GetProperty("member_id").GetUInt64();
            if (leader == self)
            {
                var endpoint = status.GetProperty("Endpoint").GetString();
                return running.Single(m => m.Endpoint.GetLeftPart(UriPartial.Authority) == endpoint).Index;
            }
        }

        throw new InvalidOperationException($"No member is the leader:\n{result.StandardOutput}");
    }

    /// <summary>Runs <c>etcdctl</c> (API v3) against <paramref name="endpoints"/> (default: every member); throws
    /// with its output when it fails.</summary>
    public async Task<ToolResult> EtcdctlAsync(string[] args, IEnumerable<Uri>? endpoints = null)
    {
        var all = string.Join(',', (endpoints ?? Endpoints).Select(e => e.GetLeftPart(UriPartial.Authority)));
        string[] tls = _tls ? ["--cacert", CaFile, "--cert", ClientCertificateFile, "--key", ClientKeyFile] : [];
        string[] user = EtcdctlUser is null ? [] : ["--user", EtcdctlUser];
        var result = await Tools.RunAsync("etcdctl", ["--endpoints", all, "--dial-timeout", "2s", "--command-timeout", "10s", .. tls, .. user, .. args], Directory,
            environment: new Dictionary<string, string> { ["ETCDCTL_API"] = "3" });
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"etcdctl {string.Join(' ', args)} failed ({result.ExitCode}): {result.StandardError}{result.StandardOutput}");
        }

        return result;
    }

    /// <summary>The last lines of member <paramref name="index"/>'s log (for failure messages).</summary>
    public string LogTail(int index, int lines = 20)
    {
        try
        {
            using var stream = new FileStream(_members[index].LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            return string.Join('\n', reader.ReadToEnd().Split('\n').TakeLast(lines));
        }
        catch (IOException ex)
        {
            return $"(no log: {ex.Message})";
        }
    }

    public async ValueTask DisposeAsync()
    {
        for (var i = 0; i < _members.Length; i++)
        {
            KillMember(i);
            _members[i].Process?.Dispose();
        }

        _http.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }

        await Task.CompletedTask;
    }

    private async Task<bool> IsHealthyAsync(Member member)
    {
        try
        {
            using var response = await _http.GetAsync(new Uri(member.Endpoint, "/health"));
            return response.IsSuccessStatusCode && (await response.Content.ReadAsStringAsync()).Contains("\"true\"", StringComparison.Ordinal);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return false;
        }
    }

    private HttpClient CreateHttpClient()
    {
        var handler = new SocketsHttpHandler { UseProxy = false };
        if (_tls)
        {
            var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
            policy.CustomTrustStore.ImportFromPemFile(CaFile);
            handler.SslOptions = new SslClientAuthenticationOptions
            {
                CertificateChainPolicy = policy,
                ClientCertificateContext = SslStreamCertificateContext.Create(X509Certificate2.CreateFromPemFile(ClientCertificateFile, ClientKeyFile), null),
            };
        }

        return new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(2) };
    }

    /// <summary>A throwaway CA, a server leaf for 127.0.0.1 and a client leaf, as PEM files in the directory.</summary>
    private void WriteCertificates()
    {
        var now = DateTimeOffset.UtcNow;
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=Gatehouse test etcd CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        caRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caRequest.PublicKey, false));
        using var ca = caRequest.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(2));
        File.WriteAllText(CaFile, ca.ExportCertificatePem() + "\n");

        void Leaf(string name, string commonName, string usageOid)
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest("CN=" + commonName, key, HashAlgorithmName.SHA256);
            var san = new SubjectAlternativeNameBuilder();
            san.AddDnsName("localhost");
            san.AddIpAddress(System.Net.IPAddress.Loopback);
            request.CertificateExtensions.Add(san.Build());
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(usageOid)], false));
            request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
            var serial = RandomNumberGenerator.GetBytes(16);
            serial[0] &= 0x7F; // positive: Go refuses negative serial numbers
            using var leaf = request.Create(ca, now.AddMinutes(-5), now.AddDays(1), serial);
            File.WriteAllText(Path.Combine(Directory, name + ".pem"), leaf.ExportCertificatePem() + "\n");
            File.WriteAllText(Path.Combine(Directory, name + ".key"), key.ExportPkcs8PrivateKeyPem() + "\n");
        }

        Leaf("server", "127.0.0.1", "1.3.6.1.5.5.7.3.1");
        Leaf("client", "gatehouse", "1.3.6.1.5.5.7.3.2");
    }

    private sealed class Member(int index, int clientPort, int peerPort, string directory, string scheme)
    {
        public int Index { get; } = index;

        public string Name { get; } = "m" + index.ToString(CultureInfo.InvariantCulture);

        public int ClientPort { get; } = clientPort;

        public int PeerPort { get; } = peerPort;

        public Uri Endpoint { get; } = new($"{scheme}://127.0.0.1:{clientPort}");

        public string DataDirectory { get; } = Path.Combine(directory, "m" + index.ToString(CultureInfo.InvariantCulture));

        public string LogPath { get; } = Path.Combine(directory, "m" + index.ToString(CultureInfo.InvariantCulture) + ".log");

        public string[] Arguments { get; set; } = [];

        public Process? Process { get; set; }
    }
}
