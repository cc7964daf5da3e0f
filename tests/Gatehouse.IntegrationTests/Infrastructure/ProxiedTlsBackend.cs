using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;

namespace Gatehouse.IntegrationTests.Infrastructure;

/// <summary>
/// A passthrough backend for tests: accepts TCP on 127.0.0.1, reads a PROXY protocol header strictly (v1, v2, or
/// none when the first byte is a TLS record's), terminates TLS with its own certificate (from its own CA, so a client
/// that trusts only that CA proves the edge never terminated), and answers one HTTP request with JSON: the client
/// address it learned, the header's version, the SNI name it saw.
/// </summary>
public sealed class ProxiedTlsBackend : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private int _connections;

    private ProxiedTlsBackend(string name, TestCa ca, TcpListener listener)
    {
        Name = name;
        Ca = ca;
        _listener = listener;
        Port = ((IPEndPoint)listener.LocalEndpoint).Port;
        _accepting = AcceptAsync();
    }

    public string Name { get; }

    public TestCa Ca { get; }

    public int Port { get; }

    /// <summary>The site backend address (<c>127.0.0.1:port</c>).</summary>
    public string Address => $"127.0.0.1:{Port}";

    /// <summary>Connections accepted so far.</summary>
    public int Connections => Volatile.Read(ref _connections);

    /// <summary>Every header read, in order.</summary>
    public ConcurrentQueue<ProxyHeader> Headers { get; } = new();

    /// <summary>Why connections failed (a bad header, a failed handshake).</summary>
    public ConcurrentQueue<string> Errors { get; } = new();

    /// <summary>Starts a backend that presents <paramref name="ca"/>'s leaf.</summary>
    public static ProxiedTlsBackend Start(string name, TestCa ca)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return new ProxiedTlsBackend(name, ca, listener);
    }

    private async Task AcceptAsync()
    {
        var connections = new List<Task>();
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                break;
            }

            Interlocked.Increment(ref _connections);
            connections.RemoveAll(t => t.IsCompleted);
            connections.Add(ServeAsync(socket));
        }

        await Task.WhenAll(connections).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private async Task ServeAsync(Socket socket)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        timeout.CancelAfter(TimeSpan.FromSeconds(20));
        await using var network = new NetworkStream(socket, ownsSocket: true);
        try
        {
            var leftover = new List<byte>();
            var header = await ProxyProtocolReader.ReadAsync(network, leftover, timeout.Token);
            Headers.Enqueue(header);
            await using var tls = new SslStream(new PrefixedStream([.. leftover], network));
            await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = Ca.Leaf, ApplicationProtocols = [SslApplicationProtocol.Http11] }, timeout.Token);
            var request = new StringBuilder();
            var buffer = new byte[1024];
            while (!request.ToString().Contains("\r\n\r\n", StringComparison.Ordinal) && request.Length < 16_384)
            {
                var read = await tls.ReadAsync(buffer, timeout.Token);
                if (read == 0)
                {
                    return;
                }

                request.Append(Encoding.ASCII.GetString(buffer, 0, read));
            }

            var body = JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["backend"] = Name,
                ["proxy"] = header.Version == 0 ? "none" : $"v{header.Version}",
                ["family"] = header.Family,
                ["source"] = header.Source?.Address.ToString(),
                ["sourcePort"] = header.Source?.Port,
                ["destination"] = header.Destination?.Address.ToString(),
                ["destinationPort"] = header.Destination?.Port,
                ["sni"] = tls.TargetHostName,
            });
            var response = $"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {Encoding.UTF8.GetByteCount(body)}\r\nConnection: close\r\n\r\n{body}";
            await tls.WriteAsync(Encoding.UTF8.GetBytes(response), timeout.Token);
            await tls.ShutdownAsync();
        }
        catch (Exception ex)
        {
            Errors.Enqueue($"{ex.GetType().Name}: {ex.Message}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
    }

    /// <summary>Bytes already read (the peeked first byte), then the stream.</summary>
    private sealed class PrefixedStream(byte[] prefix, Stream inner) : Stream
    {
        private int _offset;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush() => inner.Flush();

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_offset < prefix.Length)
            {
                var n = Math.Min(buffer.Length, prefix.Length - _offset);
                prefix.AsSpan(_offset, n).CopyTo(buffer.Span);
                _offset += n;
                return ValueTask.FromResult(n);
            }

            return inner.ReadAsync(buffer, cancellationToken);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.WriteAsync(buffer, offset, count, cancellationToken);
    }
}

/// <summary>A throwaway CA and one leaf for the given names, for backends that present their own certificates.</summary>
public sealed class TestCa : IDisposable
{
    public TestCa(string name, params string[] dnsNames)
    {
        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var rootRequest = new CertificateRequest($"CN={name} Root", rootKey, HashAlgorithmName.SHA256);
        rootRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        rootRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        Root = rootRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(2));

        var leafKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var leafRequest = new CertificateRequest($"CN={name} Leaf", leafKey, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var dnsName in dnsNames)
        {
            san.AddDnsName(dnsName);
        }

        leafRequest.CertificateExtensions.Add(san.Build());
        leafRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        leafRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var issued = leafRequest.Create(Root, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1), RandomNumberGenerator.GetBytes(16));
        Leaf = issued.CopyWithPrivateKey(leafKey);
        LeafKeyPem = leafKey.ExportPkcs8PrivateKeyPem();
        leafKey.Dispose();
    }

    public X509Certificate2 Root { get; }

    public X509Certificate2 Leaf { get; }

    private string LeafKeyPem { get; }

    /// <summary>Writes the root (for clients: curl --cacert, openssl -CAfile) and returns its path.</summary>
    public string WriteRootPem(string directory)
    {
        var path = Path.Combine(directory, "backend-root.pem");
        File.WriteAllText(path, Root.ExportCertificatePem());
        return path;
    }

    /// <summary>Writes the leaf and its key in one PEM file (HAProxy's <c>crt</c>) and returns its path.</summary>
    public string WriteLeafWithKeyPem(string directory)
    {
        var path = Path.Combine(directory, "backend-leaf.pem");
        File.WriteAllText(path, Leaf.ExportCertificatePem() + "\n" + LeafKeyPem);
        return path;
    }

    public void Dispose()
    {
        Root.Dispose();
        Leaf.Dispose();
    }
}
