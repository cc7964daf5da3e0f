using System.Net;
using System.Net.Sockets;

/// <summary>
/// A loopback TCP relay that notes when bytes pass in each direction, without looking into them (the ACME traffic is
/// TLS end to end). On a connection without pipelining (HTTP/1.1 as HttpClient and Pebble's validator use it), a run of
/// client bytes followed by a run of server bytes is one exchange, and the gap between the last client byte and the
/// first server byte is the server's answer time as seen from the client's side of the loopback.
/// </summary>
internal sealed class TimingRelay : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _targetPort;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<RelayedConnection> _connections = [];
    private readonly Task _accepting;

    public TimingRelay(int targetPort)
    {
        _targetPort = targetPort;
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = AcceptAsync();
    }

    public int Port { get; }

    /// <summary>Every exchange on every connection so far; the first <paramref name="skipPerConnection"/> exchanges of
    /// each connection are left out (a TLS handshake takes two).</summary>
    public List<Exchange> Exchanges(int skipPerConnection)
    {
        List<RelayedConnection> connections;
        lock (_connections)
        {
            connections = [.. _connections];
        }

        return [.. connections.SelectMany(c => c.Exchanges().Skip(skipPerConnection))];
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }

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

            var connection = new RelayedConnection();
            lock (_connections)
            {
                _connections.Add(connection);
            }

            _ = RelayAsync(client, connection);
        }
    }

    private async Task RelayAsync(Socket client, RelayedConnection connection)
    {
        using var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var clientSocket = client;
        clientSocket.NoDelay = true;
        try
        {
            await server.ConnectAsync(IPAddress.Loopback, _targetPort, _stop.Token);
            await Task.WhenAll(PumpAsync(clientSocket, server, connection, fromClient: true), PumpAsync(server, clientSocket, connection, fromClient: false));
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task PumpAsync(Socket from, Socket to, RelayedConnection connection, bool fromClient)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (read == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }

                connection.Note(DateTimeOffset.UtcNow, fromClient);
                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, _stop.Token);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private sealed class RelayedConnection
    {
        private readonly List<(DateTimeOffset At, bool FromClient)> _chunks = [];

        public void Note(DateTimeOffset at, bool fromClient)
        {
            lock (_chunks)
            {
                _chunks.Add((at, fromClient));
            }
        }

        public List<Exchange> Exchanges()
        {
            List<(DateTimeOffset At, bool FromClient)> chunks;
            lock (_chunks)
            {
                chunks = [.. _chunks];
            }

            var exchanges = new List<Exchange>();
            DateTimeOffset? sent = null, lastSent = null, answered = null, lastAnswered = null;
            foreach (var (at, fromClient) in chunks)
            {
                if (fromClient)
                {
                    if (answered is not null)
                    {
                        exchanges.Add(new Exchange(sent!.Value, lastSent!.Value, answered.Value, lastAnswered!.Value));
                        sent = null;
                        answered = null;
                    }

                    sent ??= at;
                    lastSent = at;
                }
                else if (sent is not null)
                {
                    answered ??= at;
                    lastAnswered = at;
                }
            }

            if (answered is not null)
            {
                exchanges.Add(new Exchange(sent!.Value, lastSent!.Value, answered.Value, lastAnswered!.Value));
            }

            return exchanges;
        }
    }
}

/// <summary>One request/answer on a relayed connection: client bytes from <paramref name="Sent"/> to
/// <paramref name="LastSent"/>, server bytes from <paramref name="Answered"/> to <paramref name="LastAnswered"/>.</summary>
internal sealed record Exchange(DateTimeOffset Sent, DateTimeOffset LastSent, DateTimeOffset Answered, DateTimeOffset LastAnswered)
{
    public TimeSpan ServerTime => Answered - LastSent;
}
