// One TLS handshake as the benches probe an edge: a new TCP connection to 127.0.0.1, SNI set explicitly, a full
// handshake (no session resumption, so the server has to present its current certificate), then closed.
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

internal static class TlsProbe
{
    /// <summary>The serial of the leaf the server on 127.0.0.1:<paramref name="port"/> presents for
    /// <paramref name="host"/> when it chains to <paramref name="root"/> and names the host; null when the handshake
    /// fails or the certificate does not pass (no certificate yet: the edge ends the handshake).</summary>
    public static async Task<string?> ServedSerialAsync(int port, string host, X509Certificate2 root, TimeSpan timeout)
    {
        using var attempt = new CancellationTokenSource(timeout);
        using var tcp = new TcpClient();
        try
        {
            await tcp.ConnectAsync(IPAddress.Loopback, port, attempt.Token);
            await using var tls = new SslStream(tcp.GetStream());
            var trust = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
            trust.CustomTrustStore.Add(root);
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = host, CertificateChainPolicy = trust, AllowTlsResume = false }, attempt.Token);
            using var leaf = new X509Certificate2(tls.RemoteCertificate!);
            return leaf.SerialNumber;
        }
        catch (Exception ex) when (ex is SocketException or IOException or AuthenticationException or OperationCanceledException)
        {
            return null;
        }
    }
}
