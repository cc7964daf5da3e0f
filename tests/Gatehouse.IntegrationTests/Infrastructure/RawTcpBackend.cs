using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Gatehouse.IntegrationTests.Infrastructure;

/// <summary>What a <see cref="RawTcpBackend"/> does after the PROXY header.</summary>
public enum RawBackendBehavior
{
    /// <summary>Reads until the client's FIN, then answers <c>got N</c> (the bytes after the header) and closes.</summary>
    CountUntilEof,

    /// <summary>Sends <c>bye</c> and half-closes at once, then reads until the client's FIN and records the count.</summary>
    FinFirst,

    /// <summary>Reads and never answers or closes (until the test ends).</summary>
    Hold,
}

/// <summary>A passthrough backend below TLS: reads the PROXY header, then treats the bytes (a ClientHello and more)
/// as opaque, to check how the edge passes half-closes and idle connections on.</summary>
public sealed class RawTcpBackend : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private readonly RawBackendBehavior _behavior;

    private RawTcpBackend(TcpListener listener, RawBackendBehavior behavior)
    {
        _listener = listener;
        _behavior = behavior;
        Port = ((IPEndPoint)listener.LocalEndpoint).Port;
        _accepting = AcceptAsync();
    }

    public int Port { get; }

    public string Address => $"127.0.0.1:{Port}";

    /// <summary>Bytes each connection received after its header, once the client's FIN arrived.</summary>
    public ConcurrentQueue<long> ReceivedUntilEof { get; } = new();

    /// <summary>The connections that ended, one entry each: "eof" after the client's FIN, else the error.</summary>
    public ConcurrentQueue<string> Ends { get; } = new();

    public static RawTcpBackend Start(RawBackendBehavior behavior)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return new RawTcpBackend(listener, behavior);
    }

    private async Task AcceptAsync()
    {
        var connections = new List<Task>();
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var socket = await _listener.AcceptSocketAsync(_stop.Token);
                connections.RemoveAll(t => t.IsCompleted);
                connections.Add(ServeAsync(socket));
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                break;
            }
        }

        await Task.WhenAll(connections).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private async Task ServeAsync(Socket socket)
    {
        using var _ = socket;
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        try
        {
            await ProxyProtocolReader.ReadAsync(stream, [], _stop.Token);
            if (_behavior == RawBackendBehavior.FinFirst)
            {
                await stream.WriteAsync("bye\n"u8.ToArray(), _stop.Token);
                socket.Shutdown(SocketShutdown.Send);
            }

            var count = 0L;
            var buffer = new byte[4096];
            while (true)
            {
                var read = await stream.ReadAsync(buffer, _stop.Token);
                if (read == 0)
                {
                    break;
                }

                count += read;
            }

            ReceivedUntilEof.Enqueue(count);
            if (_behavior == RawBackendBehavior.CountUntilEof)
            {
                await stream.WriteAsync(Encoding.ASCII.GetBytes($"got {count}\n"), _stop.Token);
                socket.Shutdown(SocketShutdown.Send);
            }

            Ends.Enqueue("eof");
        }
        catch (Exception ex)
        {
            Ends.Enqueue($"{ex.GetType().Name}: {ex.Message}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
    }
}

/// <summary>Real ClientHello bytes, as an SslStream client writes them, for tests that speak below TLS.</summary>
public static class ClientHelloBytes
{
    public static async Task<byte[]> CaptureAsync(string? serverName)
    {
        var capture = new CaptureStream();
        await using var ssl = new System.Net.Security.SslStream(capture);
        try
        {
            await ssl.AuthenticateAsClientAsync(new System.Net.Security.SslClientAuthenticationOptions
            {
                TargetHost = serverName ?? "",
                RemoteCertificateValidationCallback = (_, _, _, _) => false,
            });
        }
        catch (IOException)
        {
            // the capture stream has nothing to read back: the hello is written by then
        }

        return capture.Written.ToArray();
    }

    private sealed class CaptureStream : Stream
    {
        public MemoryStream Written { get; } = new();

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new IOException("capture only");

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => throw new IOException("capture only");

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => throw new IOException("capture only");

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => Written.Write(buffer, offset, count);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Written.Write(buffer.Span);
            return ValueTask.CompletedTask;
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            Written.Write(buffer, offset, count);
            return Task.CompletedTask;
        }
    }
}
