using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Gatehouse.IntegrationTests.Infrastructure;

/// <summary>
/// A loopback TCP relay for plain HTTP, standing for DNS load balancing in front of several instances: it reads the
/// request head, asks <see cref="Route"/> which port the connection goes to (by the Host name), optionally holds the
/// connection until <see cref="Gate"/> lets it through, then relays bytes both ways. It records where each
/// connection went.
/// </summary>
public sealed class HttpRelay : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    public HttpRelay(Func<string, int> route)
    {
        Route = route;
        Port = Ports.Free();
        _listener = new TcpListener(IPAddress.Loopback, Port);
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public int Port { get; }

    /// <summary>Picks the target port for a request to a host name (without the port).</summary>
    public Func<string, int> Route { get; set; }

    /// <summary>Awaited before a request to the host is relayed (default: at once).</summary>
    public Func<string, Task> Gate { get; set; } = _ => Task.CompletedTask;

    /// <summary>Each relayed connection: host name and the port it went to.</summary>
    public ConcurrentQueue<(string Host, int Port)> Routed { get; } = new();

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = RelayAsync(client);
        }
    }

    private async Task RelayAsync(Socket client)
    {
        using var _ = client;
        try
        {
            var head = new byte[16 * 1024];
            var length = 0;
            int end;
            while ((end = IndexOfHeadEnd(head.AsSpan(0, length))) < 0 && length < head.Length)
            {
                var read = await client.ReceiveAsync(head.AsMemory(length), _stop.Token);
                if (read == 0)
                {
                    return;
                }

                length += read;
            }

            var host = HostOf(Encoding.ASCII.GetString(head, 0, length));
            await Gate(host).WaitAsync(_stop.Token);
            var port = Route(host);
            Routed.Enqueue((host, port));
            using var target = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await target.ConnectAsync(IPAddress.Loopback, port, _stop.Token);
            await target.SendAsync(head.AsMemory(0, length), _stop.Token);
            await Task.WhenAny(CopyAsync(client, target), CopyAsync(target, client));
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException)
        {
            // the client, the target or the relay went away
        }
    }

    private async Task CopyAsync(Socket from, Socket to)
    {
        var buffer = new byte[16 * 1024];
        while (true)
        {
            var read = await from.ReceiveAsync(buffer, _stop.Token);
            if (read == 0)
            {
                to.Shutdown(SocketShutdown.Send);
                return;
            }

            await to.SendAsync(buffer.AsMemory(0, read), _stop.Token);
        }
    }

    private static int IndexOfHeadEnd(ReadOnlySpan<byte> data) => data.IndexOf("\r\n\r\n"u8);

    private static string HostOf(string head)
    {
        foreach (var line in head.Split("\r\n"))
        {
            if (line.StartsWith("Host:", StringComparison.OrdinalIgnoreCase))
            {
                var value = line[5..].Trim();
                var colon = value.LastIndexOf(':');
                return (colon > 0 ? value[..colon] : value).ToLowerInvariant();
            }
        }

        return "";
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
    }
}
