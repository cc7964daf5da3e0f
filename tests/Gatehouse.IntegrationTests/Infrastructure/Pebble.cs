using System.Diagnostics;
using System.Net.Http.Json;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;

namespace Gatehouse.IntegrationTests.Infrastructure;

/// <summary>How to run Pebble; every switch maps to a Pebble config key or environment variable.</summary>
public sealed record PebbleOptions
{
    /// <summary>PEBBLE_VA_NOSLEEP=1: no random sleep before validation.</summary>
    public bool NoValidationSleep { get; init; } = true;

    /// <summary>PEBBLE_WFE_NONCEREJECT; null keeps Pebble's default (5 %).</summary>
    public int? NonceRejectPercent { get; init; }

    /// <summary>PEBBLE_AUTHZREUSE; null keeps Pebble's default (50 %).</summary>
    public int? AuthorizationReusePercent { get; init; }

    /// <summary>PEBBLE_ALTERNATE_ROOTS: how many alternate chains each certificate has.</summary>
    public int AlternateRoots { get; init; }

    /// <summary>externalAccountBindingRequired with these key ids → base64url HMAC keys.</summary>
    public IReadOnlyDictionary<string, string>? ExternalAccountMacKeys { get; init; }

    public IReadOnlyList<string> DomainBlocklist { get; init; } = [];

    /// <summary>certificateValidityPeriod, seconds.</summary>
    public int? CertificateValiditySeconds { get; init; }

    /// <summary>The DNS server Pebble resolves through (host:port), e.g. a BIND fixture for DNS-01 through RFC 2136.
    /// Null: challtestsrv, which resolves every name to 127.0.0.1.</summary>
    public string? DnsServer { get; init; }

    /// <summary>The port Pebble connects to for HTTP-01. Null: challtestsrv's own HTTP-01 responder on a free port.
    /// Set: a responder of the test's own on that port, e.g. a Gatehouse edge (challtestsrv then serves none).</summary>
    public int? HttpPort { get; init; }

    /// <summary>The port Pebble connects to for TLS-ALPN-01. Null: challtestsrv's own TLS-ALPN-01 responder on a
    /// free port. Set: a responder of the test's own on that port (challtestsrv then serves none).</summary>
    public int? TlsAlpnPort { get; init; }
}

/// <summary>
/// A real Pebble 2.4.0 and pebble-challtestsrv (Debian package <c>pebble</c>) on loopback: a throwaway transport CA
/// and a leaf for localhost/127.0.0.1 made here, the config in a temp directory, free ports, challtestsrv as Pebble's
/// DNS (every name resolves to 127.0.0.1 only) and as its HTTP-01 / TLS-ALPN-01 responder. Killed and deleted on
/// dispose. See shared/reference/acme-testbed.md.
/// </summary>
public sealed class Pebble : IAsyncDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "gatehouse-pebble-" + Guid.NewGuid().ToString("N")[..12]);
    private readonly PebbleOptions _options;
    private readonly HttpClient _management;
    private readonly HttpClient _challTestSrv;
    private readonly StringBuilder _output = new();
    private int _ordersAdded;
    private Process? _pebble;
    private Process? _challTestSrvProcess;

    private Pebble(PebbleOptions options)
    {
        _options = options;
        AcmePort = Ports.Free();
        ManagementPort = Ports.Free();
        HttpPort = options.HttpPort ?? Ports.Free();
        TlsAlpnPort = options.TlsAlpnPort ?? Ports.Free();
        DnsPort = Ports.Free();
        ChallTestSrvPort = Ports.Free();
        Directory.CreateDirectory(_directory);
        TransportRoot = WriteTransportCertificates(_directory);
        _management = CreateHttpClient();
        _challTestSrv = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{ChallTestSrvPort}/") };
    }

    public int AcmePort { get; }

    public int ManagementPort { get; }

    /// <summary>Where Pebble validates HTTP-01 (challtestsrv answers there).</summary>
    public int HttpPort { get; }

    /// <summary>Where Pebble validates TLS-ALPN-01.</summary>
    public int TlsAlpnPort { get; }

    public int DnsPort { get; }

    public int ChallTestSrvPort { get; }

    public Uri DirectoryUrl => new($"https://localhost:{AcmePort}/dir");

    /// <summary>The throwaway CA of Pebble's own HTTPS listeners (not of the certificates it issues).</summary>
    public X509Certificate2 TransportRoot { get; }

    /// <summary>The root that signs what this Pebble issues (<c>/roots/0</c>, fetched at every start: Pebble makes a
    /// new one each time).</summary>
    public X509Certificate2 IssuingRoot { get; private set; } = null!;

    /// <summary>What both processes printed (for failure messages).</summary>
    /// <summary>How many orders Pebble has added to its database since it started (counted from its log as it
    /// arrives, so the count survives <see cref="Output"/> keeping only the tail).</summary>
    public int OrdersAdded => Volatile.Read(ref _ordersAdded);

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts a Pebble that validates against <paramref name="gatehouse"/>'s edge (HTTP-01 on its HTTP port,
    /// TLS-ALPN-01 on its HTTPS port) and writes its transport CA to <c>pebble-ca.pem</c> in the instance's directory,
    /// for the issuer's <c>caBundle</c>.</summary>
    public static async Task<Pebble> StartForAsync(GatehouseInstance gatehouse, PebbleOptions? options = null)
    {
        var pebble = await StartAsync((options ?? new PebbleOptions()) with { HttpPort = gatehouse.HttpPort, TlsAlpnPort = gatehouse.HttpsPort });
        await File.WriteAllTextAsync(Path.Combine(gatehouse.Directory, "pebble-ca.pem"), pebble.TransportRoot.ExportCertificatePem());
        return pebble;
    }

    public static async Task<Pebble> StartAsync(PebbleOptions? options = null)
    {
        var pebble = new Pebble(options ?? new PebbleOptions());
        try
        {
            await pebble.StartChallTestSrvAsync();
            await pebble.StartPebbleAsync();
            return pebble;
        }
        catch
        {
            await pebble.DisposeAsync();
            throw;
        }
    }

    /// <summary>An HttpClient that trusts only <see cref="TransportRoot"/>, for the ACME client under test.</summary>
    public HttpClient CreateHttpClient()
    {
        var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
        policy.CustomTrustStore.Add(TransportRoot);
        return new HttpClient(new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions { CertificateChainPolicy = policy },
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        })
        {
            Timeout = TimeSpan.FromSeconds(30),
        };
    }

    /// <summary>Kills Pebble (it forgets every account, order and nonce, and makes a new root) and starts it
    /// again on the same ports. challtestsrv keeps running.</summary>
    public async Task RestartAsync()
    {
        Kill(_pebble);
        _pebble = null;
        await StartPebbleAsync();
    }

    /// <summary>A root of the certificates Pebble issues (<c>/roots/N</c> of the management API).</summary>
    public async Task<X509Certificate2> GetRootAsync(int index = 0) =>
        X509Certificate2.CreateFromPem(await _management.GetStringAsync($"https://localhost:{ManagementPort}/roots/{index}"));

    /// <summary>"Valid" or "Revoked" (management <c>/cert-status-by-serial/HEX</c>), with the reason when revoked.</summary>
    public async Task<(string Status, int? Reason)> GetCertificateStatusAsync(string serialHex)
    {
        var json = await _management.GetFromJsonAsync<JsonObject>($"https://localhost:{ManagementPort}/cert-status-by-serial/{serialHex.ToLowerInvariant()}")
            ?? throw new InvalidOperationException("no status");
        return ((string)json["Status"]!, json["Reason"] is { } reason ? (int)reason : null);
    }

    public Task AddHttp01Async(string token, string content) => ManageAsync("add-http01", new { token, content });

    public Task RemoveHttp01Async(string token) => ManageAsync("del-http01", new { token });

    /// <summary>Sets the TXT record of <paramref name="name"/> (no trailing dot needed).</summary>
    public Task SetTxtAsync(string name, string value) => ManageAsync("set-txt", new { host = name.TrimEnd('.') + ".", value });

    public Task ClearTxtAsync(string name) => ManageAsync("clear-txt", new { host = name.TrimEnd('.') + "." });

    public Task AddTlsAlpn01Async(string host, string keyAuthorization) => ManageAsync("add-tlsalpn01", new { host, content = keyAuthorization });

    public Task RemoveTlsAlpn01Async(string host) => ManageAsync("del-tlsalpn01", new { host });

    public async ValueTask DisposeAsync()
    {
        Kill(_pebble);
        Kill(_challTestSrvProcess);
        _management.Dispose();
        _challTestSrv.Dispose();
        TransportRoot.Dispose();
        IssuingRoot?.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }

        await Task.CompletedTask;
    }

    private async Task ManageAsync(string path, object body)
    {
        using var response = await _challTestSrv.PostAsJsonAsync(path, body);
        response.EnsureSuccessStatusCode();
    }

    private async Task StartChallTestSrvAsync()
    {
        // Every address is given: the defaults bind all interfaces (and the DNS default answers ::1 as well, which
        // makes Pebble dial [::1] first).
        _challTestSrvProcess = Start("pebble-challtestsrv",
        [
            "-management", $"127.0.0.1:{ChallTestSrvPort}",
            "-dns01", $"127.0.0.1:{DnsPort}",
            "-http01", _options.HttpPort is null ? $"127.0.0.1:{HttpPort}" : "",
            "-https01", "",
            "-tlsalpn01", _options.TlsAlpnPort is null ? $"127.0.0.1:{TlsAlpnPort}" : "",
            "-defaultIPv4", "127.0.0.1",
            "-defaultIPv6", "",
        ], new Dictionary<string, string>());
        await WaitUntilAsync("pebble-challtestsrv", _challTestSrvProcess, async () =>
        {
            using var response = await _challTestSrv.PostAsJsonAsync("clear-txt", new { host = "ready.test." });
            return response.IsSuccessStatusCode;
        });
    }

    private async Task StartPebbleAsync()
    {
        var config = new JsonObject
        {
            ["listenAddress"] = $"127.0.0.1:{AcmePort}",
            ["managementListenAddress"] = $"127.0.0.1:{ManagementPort}",
            ["certificate"] = Path.Combine(_directory, "transport.pem"),
            ["privateKey"] = Path.Combine(_directory, "transport.key"),
            ["httpPort"] = HttpPort,
            ["tlsPort"] = TlsAlpnPort,
            ["ocspResponderURL"] = "",
            ["externalAccountBindingRequired"] = _options.ExternalAccountMacKeys is not null,
        };
        if (_options.ExternalAccountMacKeys is { } keys)
        {
            config["externalAccountMACKeys"] = new JsonObject(keys.Select(k => KeyValuePair.Create(k.Key, (JsonNode?)k.Value)));
        }

        if (_options.DomainBlocklist.Count > 0)
        {
            config["domainBlocklist"] = new JsonArray(_options.DomainBlocklist.Select(d => (JsonNode?)d).ToArray());
        }

        if (_options.CertificateValiditySeconds is { } validity)
        {
            config["certificateValidityPeriod"] = validity;
        }

        var configPath = Path.Combine(_directory, "pebble.json");
        await File.WriteAllTextAsync(configPath, new JsonObject { ["pebble"] = config }.ToJsonString());

        var environment = new Dictionary<string, string>();
        if (_options.NoValidationSleep)
        {
            environment["PEBBLE_VA_NOSLEEP"] = "1";
        }

        if (_options.NonceRejectPercent is { } reject)
        {
            environment["PEBBLE_WFE_NONCEREJECT"] = reject.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        if (_options.AuthorizationReusePercent is { } reuse)
        {
            environment["PEBBLE_AUTHZREUSE"] = reuse.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        if (_options.AlternateRoots > 0)
        {
            environment["PEBBLE_ALTERNATE_ROOTS"] = _options.AlternateRoots.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        _pebble = Start("pebble", ["-config", configPath, "-dnsserver", _options.DnsServer ?? $"127.0.0.1:{DnsPort}", "-strict=false"], environment);
        await WaitUntilAsync("pebble", _pebble, async () =>
        {
            using var response = await _management.GetAsync(DirectoryUrl);
            return response.IsSuccessStatusCode;
        });
        IssuingRoot?.Dispose();
        IssuingRoot = await GetRootAsync(0);
    }

    private Process Start(string tool, string[] args, Dictionary<string, string> environment)
    {
        var start = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException($"{tool} did not start");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException($"{tool} is not installed; run: apt-get install pebble", ex);
        }

        process.OutputDataReceived += (_, e) => Append(tool, e.Data);
        process.ErrorDataReceived += (_, e) => Append(tool, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private void Append(string tool, string? line)
    {
        if (line is null)
        {
            return;
        }

        if (tool == "pebble" && line.Contains("Added order \"", StringComparison.Ordinal))
        {
            Interlocked.Increment(ref _ordersAdded);
        }

        lock (_output)
        {
            // Pebble logs every request; keep the tail only.
            if (_output.Length > 200_000)
            {
                _output.Remove(0, 100_000);
            }

            _output.Append(tool).Append(": ").AppendLine(line);
        }
    }

    private async Task WaitUntilAsync(string tool, Process process, Func<Task<bool>> ready)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(15))
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"{tool} exited with {process.ExitCode}:\n{Output}");
            }

            try
            {
                if (await ready())
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }

            await Task.Delay(20);
        }

        throw new TimeoutException($"{tool} did not become ready in 15 s:\n{Output}");
    }

    private static void Kill(Process? process)
    {
        if (process is null)
        {
            return;
        }

        try
        {
            if (!process.HasExited)
            {
                process.Kill();
                process.WaitForExit(5_000);
            }
        }
        catch (InvalidOperationException)
        {
        }

        process.Dispose();
    }

    /// <summary>A CA and a leaf (localhost, 127.0.0.1) for Pebble's HTTPS listeners, written as PEM.</summary>
    private static X509Certificate2 WriteTransportCertificates(string directory)
    {
        var now = DateTimeOffset.UtcNow;
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=Gatehouse test Pebble transport CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        caRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caRequest.PublicKey, false));
        using var ca = caRequest.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(2));

        using var leafKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var leafRequest = new CertificateRequest("CN=localhost", leafKey, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(System.Net.IPAddress.Loopback);
        leafRequest.CertificateExtensions.Add(san.Build());
        leafRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        leafRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        leafRequest.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F; // positive: Go refuses negative serial numbers
        using var leaf = leafRequest.Create(ca, now.AddMinutes(-5), now.AddDays(1), serial);

        File.WriteAllText(Path.Combine(directory, "transport.pem"), leaf.ExportCertificatePem() + "\n" + ca.ExportCertificatePem() + "\n");
        File.WriteAllText(Path.Combine(directory, "transport.key"), leafKey.ExportPkcs8PrivateKeyPem());
        return X509CertificateLoader.LoadCertificate(ca.RawData);
    }
}
