using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Gatehouse.Edge.Tls;

/// <summary>
/// The TLS defaults of the whole process, set through OpenSSL's configuration (<c>openssl-gatehouse.cnf</c> next to
/// the assembly): TLS 1.2 and 1.3, AEAD suites with forward secrecy only.
/// <para>
/// Why not <see cref="SslServerAuthenticationOptions.CipherSuitesPolicy"/>: on Linux, .NET shares one OpenSSL
/// SSL_CTX per server certificate between connections only when no cipher policy is given. Without a shared SSL_CTX
/// every handshake builds a context from scratch and no session can be resumed, since session IDs and ticket keys
/// live in the SSL_CTX. So the edge leaves the policy empty when the process's OpenSSL defaults already are the
/// edge's policy, which <see cref="ServerDefaultsAreAeadOnly"/> checks with a real handshake, and sets the policy
/// on every connection (correct, slower, no resumption) when they are not.
/// </para>
/// </summary>
public static partial class TlsProcessDefaults
{
    /// <summary>The configuration file, copied next to the assemblies of every project that uses the edge.</summary>
    public const string ConfigFileName = "openssl-gatehouse.cnf";

    /// <summary>What <see cref="Apply"/> did in this process (null: it did not run).</summary>
    public static string? Outcome { get; private set; }

    private static readonly Lazy<bool> AeadOnlyProbe = new(ProbeServerDefaults, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>
    /// Points OpenSSL at Gatehouse's defaults. OpenSSL reads its configuration once, when the process first uses it,
    /// so this must run before anything uses TLS or OpenSSL-backed crypto: first thing in <c>Main</c>, or in a
    /// module initializer. An <c>OPENSSL_CONF</c> the operator set is left alone (the edge then sets its cipher
    /// policy per connection and logs that sessions are not resumed).
    /// </summary>
    /// <returns>What was done, for a log line once logging exists.</returns>
    public static string Apply() => Outcome = ApplyOnce();

    private static string ApplyOnce()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "not Linux: the platform's TLS defaults apply";
        }

        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OPENSSL_CONF")))
        {
            return "OPENSSL_CONF is set; left as it is";
        }

        var path = Path.Combine(AppContext.BaseDirectory, ConfigFileName);
        if (!File.Exists(path))
        {
            return $"{path} is missing; the edge sets its cipher policy per connection";
        }

        // Environment.SetEnvironmentVariable changes only .NET's copy of the environment; OpenSSL reads the C one.
        if (SetEnvironmentVariable("OPENSSL_CONF", path, 1) != 0)
        {
            return $"setenv(OPENSSL_CONF) failed (errno {Marshal.GetLastPInvokeError()}); the edge sets its cipher policy per connection";
        }

        Environment.SetEnvironmentVariable("OPENSSL_CONF", path); // child processes and later readers see it too
        return $"OpenSSL defaults from {path}";
    }

    /// <summary>
    /// Whether a server with no cipher policy negotiates only the edge's suites in this process: a TLS 1.2 client
    /// that offers only CBC suites is refused while one that offers an AEAD suite is served. Probed once, over
    /// loopback, with a throwaway certificate.
    /// </summary>
    public static bool ServerDefaultsAreAeadOnly => AeadOnlyProbe.Value;

    private static bool ProbeServerDefaults()
    {
        if (!OperatingSystem.IsLinux())
        {
            return false; // CipherSuitesPolicy is what the other platforms support, if anything
        }

        try
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest("CN=gatehouse-tls-probe", key, HashAlgorithmName.SHA256);
            using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddMinutes(5));
            var context = SslStreamCertificateContext.Create(certificate, null, offline: true);
            var aead = Handshake(context, TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
            var cbc = Handshake(context, TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA);
            return aead && !cbc;
        }
        catch (Exception ex) when (ex is CryptographicException or SocketException or PlatformNotSupportedException)
        {
            return false;
        }
    }

    /// <summary>Whether a TLS 1.2 client that offers only <paramref name="suites"/> completes a handshake with a
    /// server that has no cipher policy.</summary>
    private static bool Handshake(SslStreamCertificateContext context, params TlsCipherSuite[] suites)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start(1);
        using var client = new TcpClient();
        var connect = client.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
        using var accepted = listener.AcceptTcpClient();
        connect.Wait(TimeSpan.FromSeconds(10));
        using var serverStream = new SslStream(accepted.GetStream());
        using var clientStream = new SslStream(client.GetStream());
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var server = serverStream.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
        {
            ServerCertificateContext = context,
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        }, timeout.Token);
        var clientSide = clientStream.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "gatehouse-tls-probe",
            EnabledSslProtocols = SslProtocols.Tls12,
            CipherSuitesPolicy = new CipherSuitesPolicy(suites),
            // The probe's own throwaway certificate, and nothing else.
            RemoteCertificateValidationCallback = (_, presented, _, _) => presented is not null && presented.GetCertHashString() == context.TargetCertificate.GetCertHashString(),
        }, timeout.Token);
        try
        {
            Task.WhenAll(server, clientSide).Wait(timeout.Token);
            return true;
        }
        catch (Exception ex) when (ex is AggregateException or OperationCanceledException or AuthenticationException or IOException)
        {
            return false;
        }
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int SetEnvironmentVariable(string name, string value, int overwrite);
}
