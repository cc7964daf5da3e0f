using System.Net.Security;
using System.Security.Authentication;

namespace Gatehouse.IntegrationTests.Infrastructure;

/// <summary>Real ClientHello bytes, as an SslStream client writes them, for tests that speak below TLS.</summary>
public static class ClientHelloBytes
{
    /// <summary>The ClientHello an SslStream client sends for <paramref name="serverName"/> (none when null).</summary>
    public static async Task<byte[]> CaptureAsync(string? serverName, SslProtocols protocols = SslProtocols.None, List<SslApplicationProtocol>? alpn = null)
    {
        var capture = new CaptureStream();
        await using var ssl = new SslStream(capture);
        try
        {
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = serverName ?? "",
                EnabledSslProtocols = protocols,
                ApplicationProtocols = alpn,
                RemoteCertificateValidationCallback = (_, _, _, _) => false, // never gets that far
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
