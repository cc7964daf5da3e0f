using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.IntegrationTests.Infrastructure;

/// <summary>
/// The peer: Debian's nginx with one server block per site (the same names as the Gatehouse sites), each with its
/// own certificate files from a chain the bench makes like Gatehouse's local CA (ECDSA P-256 root → intermediate →
/// leaf, the file holding leaf + intermediate). One worker, started in the foreground (<c>daemon off</c>) with its
/// own prefix, pid file, error log and temp paths in the work directory, listening on 127.0.0.1 only. A certificate
/// update is: a new leaf and key written over one site's files (each file replaced by a rename), then
/// <c>nginx -s reload</c>.
/// </summary>
internal sealed class NginxPeer : IAsyncDisposable
{
    private const string Nginx = "/usr/sbin/nginx";
    private static readonly TimeSpan CaValidity = TimeSpan.FromDays(30);
    private static readonly TimeSpan LeafValidity = TimeSpan.FromDays(7);

    private readonly string _directory;
    private readonly ECDsa _intermediateKey;
    private readonly X509Certificate2 _intermediate;
    private Process? _master;

    private NginxPeer(string directory, int port, X509Certificate2 root, ECDsa intermediateKey, X509Certificate2 intermediate)
    {
        _directory = directory;
        Port = port;
        Root = root;
        _intermediateKey = intermediateKey;
        _intermediate = intermediate;
    }

    public int Port { get; }

    /// <summary>The root the probes trust for nginx.</summary>
    public X509Certificate2 Root { get; }

    public static async Task<NginxPeer> StartAsync(string work, IReadOnlyList<string> hosts, StartedProcesses started, TimeSpan readyTimeout)
    {
        var directory = Path.Combine(work, "nginx");
        Directory.CreateDirectory(Path.Combine(directory, "certs"));
        Directory.CreateDirectory(Path.Combine(directory, "tmp"));
        var now = DateTimeOffset.UtcNow;
        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var rootRequest = new CertificateRequest("CN=Gatehouse bench nginx root", rootKey, HashAlgorithmName.SHA256);
        AddCaExtensions(rootRequest);
        using var rootWithKey = rootRequest.CreateSelfSigned(now.AddHours(-1), now + CaValidity);
        var root = X509CertificateLoader.LoadCertificate(rootWithKey.RawData);
        var intermediateKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var intermediateRequest = new CertificateRequest("CN=Gatehouse bench nginx intermediate", intermediateKey, HashAlgorithmName.SHA256);
        AddCaExtensions(intermediateRequest);
        intermediateRequest.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(rootWithKey, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        using var intermediateCertificate = intermediateRequest.Create(rootWithKey, now.AddHours(-1), now + CaValidity, RandomNumberGenerator.GetBytes(16));
        var intermediate = intermediateCertificate.CopyWithPrivateKey(intermediateKey);

        var port = Ports.Free();
        var temp = Path.Combine(directory, "tmp");
        var servers = string.Concat(hosts.Select(host => $$"""
                server {
                    listen 127.0.0.1:{{port}} ssl;
                    server_name {{host}};
                    ssl_certificate {{CertificatePath(directory, host)}};
                    ssl_certificate_key {{KeyPath(directory, host)}};
                    return 200 "ok\n";
                }

            """));
        await File.WriteAllTextAsync(Path.Combine(directory, "nginx.conf"), $$"""
            worker_processes 1;
            worker_shutdown_timeout 2s;
            pid {{Path.Combine(directory, "nginx.pid")}};
            error_log {{Path.Combine(directory, "error.log")}} notice;
            events { worker_connections 256; }
            http {
                access_log off;
                client_body_temp_path {{temp}}/body;
                proxy_temp_path {{temp}}/proxy;
                fastcgi_temp_path {{temp}}/fastcgi;
                uwsgi_temp_path {{temp}}/uwsgi;
                scgi_temp_path {{temp}}/scgi;
                ssl_protocols TLSv1.2 TLSv1.3;
            {{servers}}}

            """);

        var peer = new NginxPeer(directory, port, root, intermediateKey, intermediate);
        foreach (var host in hosts)
        {
            peer.WriteNewCertificate(host);
        }

        var master = peer._master = Process.Start(peer.Command(["-g", "daemon off;"])) ?? throw new InvalidOperationException("nginx did not start");
        started.Add(master.Id, "nginx");
        var clock = Stopwatch.StartNew();
        while (await TlsProbe.ServedSerialAsync(port, hosts[0], root, TimeSpan.FromSeconds(2)) is null)
        {
            if (master.HasExited || clock.Elapsed > readyTimeout)
            {
                await peer.DisposeAsync();
                throw new InvalidOperationException($"nginx did not serve within {readyTimeout.TotalSeconds:0} s; error log:\n{peer.ErrorLogTail()}");
            }

            await Task.Delay(50);
        }

        return peer;
    }

    /// <summary>Writes a new leaf (new key, new serial) for <paramref name="host"/> over its files; returns the serial.</summary>
    public string WriteNewCertificate(string host)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var issuerKey = _intermediate.GetECDsaPrivateKey() ?? throw new InvalidOperationException("the bench intermediate has no private key");
        using var leaf = BenchPki.CreateServerLeaf(host, key, _intermediate, X509SignatureGenerator.CreateForECDsa(issuerKey), LeafValidity);
        Replace(KeyPath(_directory, host), key.ExportPkcs8PrivateKeyPem());
        Replace(CertificatePath(_directory, host), leaf.ExportCertificatePem() + "\n" + _intermediate.ExportCertificatePem() + "\n");
        return leaf.SerialNumber;
    }

    /// <summary>Starts <c>nginx -s reload</c> (it reads the whole config, certificates included, to find the pid file,
    /// then sends SIGHUP to the master), or with <paramref name="signalOnly"/> <c>kill -HUP MASTER</c>: the same signal
    /// without that parse.</summary>
    public Process StartReload(bool signalOnly) =>
        (signalOnly ? Process.Start("kill", ["-HUP", _master!.Id.ToString(CultureInfo.InvariantCulture)]) : Process.Start(Command(["-s", "reload"])))
        ?? throw new InvalidOperationException("the reload command did not start");

    /// <summary>Waits until the master has exactly one worker again (the previous ones finished shutting down), at
    /// most <paramref name="limit"/>; false when it did not.</summary>
    public async Task<bool> WaitSettledAsync(TimeSpan limit)
    {
        var clock = Stopwatch.StartNew();
        while (ProcStats.Children(_master!.Id, "nginx").Length != 1)
        {
            if (clock.Elapsed > limit)
            {
                return false;
            }

            await Task.Delay(10);
        }

        return true;
    }

    public string ErrorLogTail(int lines = 20)
    {
        var path = Path.Combine(_directory, "error.log");
        return File.Exists(path) ? string.Join('\n', File.ReadLines(path).TakeLast(lines)) : "(no error log)";
    }

    public async ValueTask DisposeAsync()
    {
        if (_master is not null)
        {
            await ProcessStop.TerminateAsync(_master, TimeSpan.FromSeconds(10));
        }

        _master?.Dispose();
        _intermediate.Dispose();
        _intermediateKey.Dispose();
        Root.Dispose();
    }

    private static void AddCaExtensions(CertificateRequest request)
    {
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
    }

    private static string CertificatePath(string directory, string host) => Path.Combine(directory, "certs", host + ".pem");

    private static string KeyPath(string directory, string host) => Path.Combine(directory, "certs", host + ".key");

    private static void Replace(string path, string text)
    {
        File.WriteAllText(path + ".tmp", text);
        File.Move(path + ".tmp", path, overwrite: true);
    }

    private ProcessStartInfo Command(string[] extra) =>
        new(Nginx, ["-p", _directory, "-c", Path.Combine(_directory, "nginx.conf"), "-e", Path.Combine(_directory, "error.log"), .. extra]);
}
