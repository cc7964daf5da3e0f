using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Gatehouse.IntegrationTests.Infrastructure;

/// <summary>One request as a <see cref="RecordingHttpBackend"/> read it off the wire.</summary>
public sealed record RecordedRequest(string RequestLine, IReadOnlyList<string> Headers, string Body);

/// <summary>
/// An HTTP/1.1 backend over a plain socket that records every request exactly as it arrived (request line, header
/// lines, body bytes: Content-Length or chunked, nothing else) and answers <c>200 ok &lt;path&gt;</c>. It shows what
/// the edge really sent, where a framework backend would normalize it. Anything it cannot frame closes the
/// connection and is recorded as a request line starting with <c>UNFRAMED</c>.
/// </summary>
public sealed class RecordingHttpBackend : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    private RecordingHttpBackend(TcpListener listener)
    {
        _listener = listener;
        Port = ((IPEndPoint)listener.LocalEndpoint).Port;
        _accepting = AcceptAsync();
    }

    public int Port { get; }

    public string Url => $"http://127.0.0.1:{Port}";

    /// <summary>Every request received, in order of arrival.</summary>
    public ConcurrentQueue<RecordedRequest> Requests { get; } = new();

    public static RecordingHttpBackend Start()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return new RecordingHttpBackend(listener);
    }

    private async Task AcceptAsync()
    {
        var connections = new List<Task>();
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                connections.Add(ServeAsync(client));
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }

        await Task.WhenAll(connections);
    }

    private async Task ServeAsync(TcpClient client)
    {
        using var _ = client;
        var stream = client.GetStream();
        var reader = new LineReader(stream);
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var requestLine = await reader.ReadLineAsync(_stop.Token);
                if (requestLine is null)
                {
                    return;
                }

                var headers = new List<string>();
                while (await reader.ReadLineAsync(_stop.Token) is { Length: > 0 } header)
                {
                    headers.Add(header);
                }

                var lengths = headers.Where(h => h.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase)).ToList();
                var chunked = headers.Any(h => h.StartsWith("Transfer-Encoding:", StringComparison.OrdinalIgnoreCase));
                string body;
                if (chunked && lengths.Count == 0)
                {
                    body = await reader.ReadChunkedAsync(_stop.Token);
                }
                else if (!chunked && lengths.Count <= 1)
                {
                    var length = lengths.Count == 0 ? 0 : int.Parse(lengths[0]["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
                    body = await reader.ReadBytesAsync(length, _stop.Token);
                }
                else
                {
                    Requests.Enqueue(new RecordedRequest("UNFRAMED " + requestLine, headers, ""));
                    return;
                }

                Requests.Enqueue(new RecordedRequest(requestLine, headers, body));
                var path = requestLine.Split(' ')[1];
                var answer = Encoding.ASCII.GetBytes($"ok {path}\n");
                await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Length: {answer.Length}\r\nContent-Type: text/plain\r\n\r\n"), _stop.Token);
                await stream.WriteAsync(answer, _stop.Token);
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or FormatException or ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        await _accepting;
    }

    /// <summary>CRLF lines and counted bytes over a stream, strictly: a line must end in CRLF.</summary>
    private sealed class LineReader(Stream stream)
    {
        private readonly byte[] _buffer = new byte[16384];
        private int _start;
        private int _end;

        public async Task<string?> ReadLineAsync(CancellationToken cancellationToken)
        {
            var line = new MemoryStream();
            while (true)
            {
                if (_start == _end && !await FillAsync(cancellationToken))
                {
                    return line.Length == 0 ? null : throw new IOException("connection ended inside a line");
                }

                var b = _buffer[_start++];
                if (b == '\n')
                {
                    var bytes = line.ToArray();
                    if (bytes.Length == 0 || bytes[^1] != '\r')
                    {
                        throw new FormatException("a line ended in a bare LF");
                    }

                    return Encoding.Latin1.GetString(bytes, 0, bytes.Length - 1);
                }

                line.WriteByte(b);
            }
        }

        public async Task<string> ReadBytesAsync(int count, CancellationToken cancellationToken)
        {
            var bytes = new byte[count];
            for (var i = 0; i < count; i++)
            {
                if (_start == _end && !await FillAsync(cancellationToken))
                {
                    throw new IOException("connection ended inside a body");
                }

                bytes[i] = _buffer[_start++];
            }

            return Encoding.Latin1.GetString(bytes);
        }

        public async Task<string> ReadChunkedAsync(CancellationToken cancellationToken)
        {
            var body = new StringBuilder();
            while (true)
            {
                var size = Convert.ToInt32((await ReadLineAsync(cancellationToken) ?? throw new IOException("no chunk size")).Split(';')[0], 16);
                if (size == 0)
                {
                    while (await ReadLineAsync(cancellationToken) is { Length: > 0 })
                    {
                        // trailers
                    }

                    return body.ToString();
                }

                body.Append(await ReadBytesAsync(size, cancellationToken));
                if (await ReadLineAsync(cancellationToken) is not "")
                {
                    throw new FormatException("chunk data not followed by CRLF");
                }
            }
        }

        private async Task<bool> FillAsync(CancellationToken cancellationToken)
        {
            _start = 0;
            _end = await stream.ReadAsync(_buffer, cancellationToken);
            return _end > 0;
        }
    }
}
