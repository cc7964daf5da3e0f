using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Gatehouse.Dns;

/// <summary>A response as received, with the bytes TSIG verification needs.</summary>
internal sealed record DnsResponse(byte[] Bytes, DnsMessage Message, IPEndPoint Server);

/// <summary>
/// Sends one request and returns its response (RFC 1035 §4.2): over UDP, retried a bounded number of times, and
/// again over TCP when the UDP answer is truncated. Datagrams that are not the answer (another ID, another question,
/// not a response, malformed) are dropped while waiting, so a stray or spoofed packet cannot end the exchange.
/// Failures are <see cref="DnsException"/>s; cancellation is an <see cref="OperationCanceledException"/>.
/// </summary>
internal sealed class DnsTransport(TimeSpan attemptTimeout, int attempts)
{
    private const int MaxUdpResponse = 65_535;

    public TimeSpan AttemptTimeout { get; } = attemptTimeout > TimeSpan.Zero ? attemptTimeout : throw new ArgumentOutOfRangeException(nameof(attemptTimeout));

    public int Attempts { get; } = attempts > 0 ? attempts : throw new ArgumentOutOfRangeException(nameof(attempts));

    public async Task<DnsResponse> ExchangeAsync(IPEndPoint server, byte[] request, CancellationToken cancellationToken)
    {
        if (!DnsMessage.TryParse(request, out var sent, out var error))
        {
            throw new ArgumentException($"not a DNS message: {error}", nameof(request));
        }

        string problem = "no attempt made";
        string? unusable = null; // the last answer that was dropped, which a later attempt's timeout must not hide
        for (var attempt = 1; attempt <= Attempts; attempt++)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(AttemptTimeout);
            try
            {
                var response = await ExchangeUdpAsync(server, request, sent, timeout.Token);
                if (response.Message.Truncated)
                {
                    response = await ExchangeTcpAsync(server, request, sent, timeout.Token);
                }

                return response;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                problem = $"no answer within {AttemptTimeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s";
            }
            catch (SocketException e)
            {
                problem = e.SocketErrorCode == SocketError.ConnectionRefused ? "connection refused (nothing listens there)" : e.Message;
            }
            catch (UnusableResponseException e)
            {
                problem = unusable = e.Message;
            }
        }

        var what = unusable is not null && !ReferenceEquals(unusable, problem) ? $"{unusable}; the last attempt: {problem}" : problem;
        throw new DnsException($"DNS server {server} gave no usable answer in {Attempts} attempt(s): {what}", transient: true);
    }

    private static async Task<DnsResponse> ExchangeUdpAsync(IPEndPoint server, byte[] request, DnsMessage sent, CancellationToken cancellationToken)
    {
        using var socket = new Socket(server.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        // Connected: the kernel drops datagrams from any other address and port.
        await socket.ConnectAsync(server, cancellationToken);
        await socket.SendAsync(request, SocketFlags.None, cancellationToken);
        var buffer = new byte[MaxUdpResponse];
        string? dropped = null;
        while (true)
        {
            int received;
            try
            {
                received = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
            }
            catch (OperationCanceledException) when (dropped is not null)
            {
                throw new UnusableResponseException(dropped);
            }

            var bytes = buffer.AsSpan(0, received).ToArray();
            if (Accept(bytes, sent, out var message, out var reason))
            {
                return new DnsResponse(bytes, message, server);
            }

            dropped = reason;
        }
    }

    private static async Task<DnsResponse> ExchangeTcpAsync(IPEndPoint server, byte[] request, DnsMessage sent, CancellationToken cancellationToken)
    {
        using var socket = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(server, cancellationToken);
        var framed = new byte[2 + request.Length]; // RFC 1035 §4.2.2: a two-octet length first
        BinaryPrimitives.WriteUInt16BigEndian(framed, checked((ushort)request.Length));
        request.CopyTo(framed, 2);
        await socket.SendAsync(framed, SocketFlags.None, cancellationToken);
        var length = new byte[2];
        await ReceiveExactlyAsync(socket, length, cancellationToken);
        var bytes = new byte[BinaryPrimitives.ReadUInt16BigEndian(length)];
        await ReceiveExactlyAsync(socket, bytes, cancellationToken);
        return Accept(bytes, sent, out var message, out var reason)
            ? new DnsResponse(bytes, message, server)
            : throw new UnusableResponseException(reason + " (over TCP)");
    }

    private static async Task ReceiveExactlyAsync(Socket socket, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (!buffer.IsEmpty)
        {
            var received = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
            if (received == 0)
            {
                throw new UnusableResponseException("the server closed the TCP connection before the whole answer");
            }

            buffer = buffer[received..];
        }
    }

    private static bool Accept(byte[] bytes, DnsMessage sent, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out DnsMessage? message, out string reason)
    {
        if (!DnsMessage.TryParse(bytes, out message, out var error))
        {
            reason = "a malformed answer: " + error;
            return false;
        }

        // An error answer (FORMERR, NOTIMP) may leave the question out; when present it must be ours.
        if (!message.IsResponse || message.Id != sent.Id || message.Opcode != sent.Opcode
            || (message.Questions.Count > 0 && !SameQuestions(message.Questions, sent.Questions)))
        {
            reason = "an answer to another request";
            message = null;
            return false;
        }

        reason = "";
        return true;
    }

    private static bool SameQuestions(IReadOnlyList<DnsQuestion> a, IReadOnlyList<DnsQuestion> b)
    {
        if (a.Count != b.Count)
        {
            return false;
        }

        for (var i = 0; i < a.Count; i++)
        {
            if (!DnsName.Equal(a[i].Name, b[i].Name) || a[i].Type != b[i].Type || a[i].Class != b[i].Class)
            {
                return false;
            }
        }

        return true;
    }

    private sealed class UnusableResponseException(string message) : Exception(message);
}

/// <summary>A DNS server given as <c>host</c>, <c>host:port</c>, <c>1.2.3.4:53</c> or <c>[2001:db8::1]:53</c>.</summary>
internal sealed record DnsServerAddress(string Host, int Port)
{
    public const int DefaultPort = 53;

    /// <exception cref="ArgumentException">The text is not a host with an optional port.</exception>
    public static DnsServerAddress Parse(string text, int defaultPort = DefaultPort)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(text);
        if (IPAddress.TryParse(text, out var address) && !text.StartsWith('['))
        {
            return new DnsServerAddress(address.ToString(), defaultPort);
        }

        if (IPEndPoint.TryParse(text, out var endpoint))
        {
            return new DnsServerAddress(endpoint.Address.ToString(), endpoint.Port == 0 ? defaultPort : endpoint.Port);
        }

        var colon = text.LastIndexOf(':');
        if (colon < 0)
        {
            return new DnsServerAddress(text, defaultPort);
        }

        return colon > 0 && int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is > 0 and <= 65_535
            ? new DnsServerAddress(text[..colon], port)
            : throw new ArgumentException($"'{text}' is not a DNS server address (host or host:port)", nameof(text));
    }

    /// <summary>The addresses to reach the server at (IPv4 first, as loopback test servers listen there).</summary>
    public async Task<IPEndPoint> ResolveAsync(CancellationToken cancellationToken)
    {
        if (IPAddress.TryParse(Host, out var address))
        {
            return new IPEndPoint(address, Port);
        }

        IPAddress[] addresses;
        try
        {
            addresses = await System.Net.Dns.GetHostAddressesAsync(Host, cancellationToken);
        }
        catch (SocketException e)
        {
            throw new DnsException($"cannot resolve the DNS server name {Host}: {e.Message}", transient: true, innerException: e);
        }

        var chosen = addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? addresses.FirstOrDefault()
            ?? throw new DnsException($"the DNS server name {Host} has no address", transient: true);
        return new IPEndPoint(chosen, Port);
    }

    public override string ToString() => Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}
