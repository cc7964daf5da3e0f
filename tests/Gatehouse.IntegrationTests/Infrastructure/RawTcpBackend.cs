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
