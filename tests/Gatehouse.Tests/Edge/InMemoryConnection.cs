using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;

namespace Gatehouse.Tests.Edge;

/// <summary>
/// A connection without sockets: Kestrel's own <see cref="DefaultConnectionContext"/> over two pipes, so connection
/// middleware runs as it does in Kestrel, with a stream for the client end and one over the server's transport.
/// </summary>
internal sealed class InMemoryConnection
{
    private readonly Pipe _toServer = new();
    private readonly Pipe _toClient = new();

    public InMemoryConnection()
    {
        Server = new DefaultConnectionContext(Guid.NewGuid().ToString("N"), new DuplexPipe(_toServer.Reader, _toClient.Writer), new DuplexPipe(_toClient.Reader, _toServer.Writer));
        Client = new DuplexStream(_toClient.Reader.AsStream(), _toServer.Writer.AsStream());
    }

    /// <summary>The server's side, as connection middleware sees it.</summary>
    public ConnectionContext Server { get; }

    /// <summary>The client's side.</summary>
    public Stream Client { get; }

    /// <summary>A stream over the server's transport (what Kestrel's TLS layer reads and writes).</summary>
    public Stream ServerStream() => new DuplexStream(Server.Transport.Input.AsStream(leaveOpen: true), Server.Transport.Output.AsStream(leaveOpen: true));

    /// <summary>Everything the server wrote, up to the point it completed its output.</summary>
    public async Task<byte[]> ReadAllFromServerAsync()
    {
        using var received = new MemoryStream();
        await _toClient.Reader.AsStream().CopyToAsync(received);
        return received.ToArray();
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }

    private sealed class DuplexStream(Stream read, Stream write) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush() => write.Flush();

        public override Task FlushAsync(CancellationToken cancellationToken) => write.FlushAsync(cancellationToken);

        public override int Read(byte[] buffer, int offset, int count) => read.Read(buffer, offset, count);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => read.ReadAsync(buffer, offset, count, cancellationToken);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => read.ReadAsync(buffer, cancellationToken);

        public override void Write(byte[] buffer, int offset, int count) => write.Write(buffer, offset, count);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => write.WriteAsync(buffer, offset, count, cancellationToken);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => write.WriteAsync(buffer, cancellationToken);

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                read.Dispose();
                write.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
