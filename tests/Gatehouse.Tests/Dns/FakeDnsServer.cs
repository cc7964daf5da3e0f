using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Gatehouse.Dns;

namespace Gatehouse.Tests.Dns;

/// <summary>A request the fake server received.</summary>
/// <param name="Bytes">The request as sent.</param>
/// <param name="Message">The request decoded.</param>
/// <param name="OverTcp">Whether it came over TCP.</param>
internal sealed record FakeDnsRequest(byte[] Bytes, DnsMessage Message, bool OverTcp);

/// <summary>
/// A scripted DNS server on loopback (UDP and TCP on one port) for the cases a real server will not produce:
/// garbage, truncation, wrong IDs, silence. The handler returns the datagrams (or the TCP answer) to send back.
/// </summary>
internal sealed class FakeDnsServer : IAsyncDisposable
{
    private readonly Socket _udp;
    private readonly TcpListener _tcp;
    private readonly Func<FakeDnsRequest, IEnumerable<byte[]>> _handler;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _udpLoop;
    private readonly Task _tcpLoop;

    public FakeDnsServer(Func<FakeDnsRequest, IEnumerable<byte[]>> handler)
    {
        _handler = handler;
        (_udp, _tcp) = Bind();
        Endpoint = (IPEndPoint)_udp.LocalEndPoint!;
        _udpLoop = Task.Run(ServeUdpAsync);
        _tcpLoop = Task.Run(ServeTcpAsync);
    }

    public IPEndPoint Endpoint { get; }

    public string Address => Endpoint.ToString();

    public ConcurrentQueue<FakeDnsRequest> Requests { get; } = new();

    /// <summary>An answer to <paramref name="request"/> with the given fields changed.</summary>
    public static byte[] Answer(FakeDnsRequest request, Func<DnsMessage, DnsMessage>? change = null)
    {
        var q = request.Message;
        var response = new DnsMessage { Id = q.Id, IsResponse = true, Opcode = q.Opcode, Authoritative = true, Questions = q.Questions };
        return (change?.Invoke(response) ?? response).ToArray();
    }

    private static (Socket, TcpListener) Bind()
    {
        for (var attempt = 0; ; attempt++)
        {
            var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            udp.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            var tcp = new TcpListener(IPAddress.Loopback, ((IPEndPoint)udp.LocalEndPoint!).Port);
            try
            {
                tcp.Start();
                return (udp, tcp);
            }
            catch (SocketException) when (attempt < 20)
            {
                udp.Dispose();
            }
        }
    }

    private async Task ServeUdpAsync()
    {
        var buffer = new byte[65_535];
        while (!_stop.IsCancellationRequested)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await _udp.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), _stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }

            var bytes = buffer.AsSpan(0, received.ReceivedBytes).ToArray();
            if (!DnsMessage.TryParse(bytes, out var message, out _))
            {
                continue;
            }

            var request = new FakeDnsRequest(bytes, message, OverTcp: false);
            Requests.Enqueue(request);
            foreach (var datagram in _handler(request))
            {
                await _udp.SendToAsync(datagram, SocketFlags.None, received.RemoteEndPoint);
            }
        }
    }

    private async Task ServeTcpAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _tcp.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }

            using (client)
            {
                var stream = client.GetStream();
                var length = new byte[2];
                await stream.ReadExactlyAsync(length, _stop.Token);
                var bytes = new byte[BinaryPrimitives.ReadUInt16BigEndian(length)];
                await stream.ReadExactlyAsync(bytes, _stop.Token);
                if (!DnsMessage.TryParse(bytes, out var message, out _))
                {
                    continue;
                }

                var request = new FakeDnsRequest(bytes, message, OverTcp: true);
                Requests.Enqueue(request);
                foreach (var answer in _handler(request))
                {
                    var framed = new byte[answer.Length + 2];
                    BinaryPrimitives.WriteUInt16BigEndian(framed, (ushort)answer.Length);
                    answer.CopyTo(framed, 2);
                    await stream.WriteAsync(framed, _stop.Token);
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _udp.Dispose();
        _tcp.Stop();
        await Task.WhenAll(_udpLoop, _tcpLoop).ContinueWith(_ => { }, TaskScheduler.Default);
        _stop.Dispose();
    }
}
