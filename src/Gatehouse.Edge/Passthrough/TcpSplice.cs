using System.Buffers;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Gatehouse.Sites;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.Logging;

namespace Gatehouse.Edge.Passthrough;

/// <summary>
/// One spliced connection. Client to backend: Kestrel's input pipe (its receive loop reads the socket; the pipe
/// bounds what is buffered) to the backend socket, several pipe segments in one gathered send. Backend to client:
/// the backend socket straight into the client's socket (Kestrel's <see cref="IConnectionSocketFeature"/>; Kestrel's
/// own send loop has nothing to send meanwhile), so that the backend's half-close can be passed on as a FIN while
/// the client keeps sending — completing Kestrel's output pipe would close both directions. Without a socket (an
/// in-memory transport) the output pipe is used. Either side's end is passed on as a half-close; an error on either
/// side, the idle timeout or the server's shutdown closes both.
/// </summary>
internal sealed class TcpSplice(PassthroughRelay relay, ConnectionContext connection, Socket backend, ProxyProtocolVersion proxyProtocol)
{
    private readonly Socket? _client = connection.Features.Get<IConnectionSocketFeature>()?.Socket;
    private long _lastActivity = relay.Time.GetTimestamp();
    private long _toBackend;
    private long _toClient;
    private int _aborted;

    public async Task RunAsync()
    {
        using var stopWatching = new CancellationTokenSource();
        using var shutdown = connection.Features.Get<IConnectionLifetimeNotificationFeature>()?.ConnectionClosedRequested
            .UnsafeRegister(static state => ((TcpSplice)state!).Abort(), this);
        try
        {
            var upstream = ClientToBackendAsync();
            var downstream = BackendToClientAsync();
            var watchdog = WatchIdleAsync(stopWatching.Token);
            await Task.WhenAll(upstream, downstream);
            await stopWatching.CancelAsync();
            await watchdog;
        }
        finally
        {
            backend.Dispose();
            if (relay.Logger.IsEnabled(LogLevel.Debug))
            {
                PassthroughLog.Ended(relay.Logger, connection.ConnectionId, Interlocked.Read(ref _toBackend), Interlocked.Read(ref _toClient));
            }
        }
    }

    /// <summary>Closes both sides at once (an error, the idle timeout, the server stopping).</summary>
    private void Abort()
    {
        if (Interlocked.Exchange(ref _aborted, 1) == 0)
        {
            backend.Dispose();
            connection.Abort();
        }
    }

    private void Touch() => Volatile.Write(ref _lastActivity, relay.Time.GetTimestamp());

    private async Task ClientToBackendAsync()
    {
        var input = connection.Transport.Input;
        List<ArraySegment<byte>>? gather = null;
        var header = new byte[ProxyProtocolHeader.MaxLength];
        var headerLength = ProxyProtocolHeader.Write(proxyProtocol, connection.RemoteEndPoint, connection.LocalEndPoint, header);
        try
        {
            while (true)
            {
                var result = await input.ReadAsync();
                var buffer = result.Buffer;
                if (headerLength > 0 || !buffer.IsEmpty)
                {
                    if (headerLength == 0 && buffer.IsSingleSegment)
                    {
                        await backend.SendAsync(buffer.First, SocketFlags.None);
                    }
                    else
                    {
                        // The PROXY header goes out with the ClientHello, and a read of many pipe blocks in one send.
                        gather ??= new List<ArraySegment<byte>>(16);
                        gather.Clear();
                        if (headerLength > 0)
                        {
                            gather.Add(new ArraySegment<byte>(header, 0, headerLength));
                            headerLength = 0;
                        }

                        foreach (var segment in buffer)
                        {
                            gather.Add(MemoryMarshal.TryGetArray(segment, out var array) ? array : new ArraySegment<byte>(segment.ToArray()));
                        }

                        await backend.SendAsync(gather, SocketFlags.None);
                    }

                    _toBackend += buffer.Length;
                    Touch();
                }

                input.AdvanceTo(buffer.End);
                if (result.IsCanceled)
                {
                    Abort(); // Kestrel is tearing the connection down
                    return;
                }

                if (result.IsCompleted)
                {
                    break;
                }
            }

            backend.Shutdown(SocketShutdown.Send); // the client is done sending: pass its FIN on
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException or ConnectionResetException or ConnectionAbortedException or InvalidOperationException)
        {
            Abort();
        }
    }

    private async Task BackendToClientAsync()
    {
        var size = relay.Options.BufferSize;
        byte[]? buffer = null;
        try
        {
            while (true)
            {
                if (buffer is null)
                {
                    // Idle connections hold no buffer: wait for bytes, then rent one while they flow.
                    await backend.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None);
                    buffer = ArrayPool<byte>.Shared.Rent(size);
                }

                var received = await backend.ReceiveAsync(buffer.AsMemory(0, size), SocketFlags.None);
                if (received == 0)
                {
                    break;
                }

                if (_client is not null)
                {
                    await _client.SendAsync(buffer.AsMemory(0, received), SocketFlags.None);
                }
                else
                {
                    var flushed = await connection.Transport.Output.WriteAsync(buffer.AsMemory(0, received));
                    if (flushed.IsCompleted || flushed.IsCanceled)
                    {
                        Abort();
                        return;
                    }
                }

                _toClient += received;
                Touch();
                if (received < size)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = null;
                }
            }

            // The backend is done sending: pass its FIN on, and keep reading what the client still sends.
            if (_client is not null)
            {
                _client.Shutdown(SocketShutdown.Send);
            }
            else
            {
                await connection.Transport.Output.CompleteAsync();
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException or ConnectionResetException or ConnectionAbortedException or InvalidOperationException)
        {
            Abort();
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    /// <summary>One timer per connection, woken once per idle period at most: the pumps only stamp the time.</summary>
    private async Task WatchIdleAsync(CancellationToken stop)
    {
        var idle = relay.Options.IdleTimeout;
        try
        {
            while (true)
            {
                var quiet = relay.Time.GetElapsedTime(Volatile.Read(ref _lastActivity));
                if (quiet >= idle)
                {
                    if (relay.Logger.IsEnabled(LogLevel.Debug))
                    {
                        PassthroughLog.Idle(relay.Logger, connection.ConnectionId, idle.TotalSeconds);
                    }

                    Abort();
                    return;
                }

                await Task.Delay(idle - quiet, relay.Time, stop);
            }
        }
        catch (OperationCanceledException)
        {
            // both directions ended
        }
    }
}
