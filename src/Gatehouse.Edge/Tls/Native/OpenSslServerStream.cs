using System.IO.Pipelines;
using System.Security.Authentication;

namespace Gatehouse.Edge.Tls.Native;

/// <summary>
/// The server side of one TLS connection, run by OpenSSL over memory BIOs on top of the connection's transport pipe:
/// ciphertext read from the transport is written into the read BIO, what OpenSSL writes into the write BIO goes out on
/// the transport. Reads and writes may run at the same time (HTTP/2 does); every call into the <c>SSL</c> object runs
/// under one lock, with no I/O inside it, and everything sent on the transport goes out under one write gate, in the
/// order OpenSSL produced it.
/// </summary>
internal sealed class OpenSslServerStream : Stream
{
    /// <summary>At most this much ciphertext is handed to OpenSSL per transport read, which bounds what a connection
    /// buffers inside OpenSSL at four TLS records.</summary>
    private const int MaxInputPerRead = 4 * (16 * 1024 + 256);

    /// <summary>Plaintext given to one SSL_write, which bounds what a write leaves in the write BIO.</summary>
    private const int MaxPlaintextPerWrite = 64 * 1024;

    /// <summary>Ciphertext left unflushed on the transport after a write before the write flushes by itself.</summary>
    private const int FlushThreshold = 64 * 1024;

    private readonly IDuplexPipe _transport;
    private readonly Lock _ssl = new();
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly nint _readBio;
    private readonly nint _writeBio;
    private nint _handle;
    private bool _readCompleted;
    private int _flushQueued;
    private bool _transportReleased;

    /// <summary>A connection of <paramref name="context"/> that presents <paramref name="certificate"/>. Throws
    /// <see cref="AuthenticationException"/> with OpenSSL's reason when the connection cannot be set up.</summary>
    public OpenSslServerStream(OpenSslServerContext context, OpenSslCertificate certificate, IDuplexPipe transport)
    {
        _transport = transport;
        LibSsl.ERR_clear_error();
        var ssl = LibSsl.SSL_new(context.DangerousGetHandle());
        GC.KeepAlive(context);
        if (ssl == 0)
        {
            throw new AuthenticationException($"SSL_new failed: {LibSsl.TakeError("no OpenSSL error queued")}");
        }

        var readBio = LibSsl.BIO_new(LibSsl.BIO_s_mem());
        var writeBio = LibSsl.BIO_new(LibSsl.BIO_s_mem());
        if (readBio == 0 || writeBio == 0)
        {
            _ = LibSsl.BIO_free(readBio);
            _ = LibSsl.BIO_free(writeBio);
            LibSsl.SSL_free(ssl);
            throw new AuthenticationException("BIO_new failed");
        }

        LibSsl.SSL_set_bio(ssl, readBio, writeBio); // the SSL owns both from here
        try
        {
            certificate.ApplyTo(ssl);
        }
        catch (System.Security.Cryptography.CryptographicException ex)
        {
            LibSsl.SSL_free(ssl);
            throw new AuthenticationException(ex.Message, ex);
        }
        LibSsl.SSL_set_accept_state(ssl);
        _handle = ssl;
        _readBio = readBio;
        _writeBio = writeBio;
    }

    /// <summary>The negotiated protocol version, after the handshake.</summary>
    public SslProtocols Protocol { get; private set; }

    /// <summary>The negotiated cipher suite, after the handshake.</summary>
    public System.Net.Security.TlsCipherSuite CipherSuite { get; private set; }

    /// <summary>The ALPN protocol chosen (empty: none), after the handshake.</summary>
    public ReadOnlyMemory<byte> ApplicationProtocol { get; private set; }

    /// <summary>Whether the handshake resumed an earlier session.</summary>
    public bool Resumed { get; private set; }

    /// <summary>Runs the server handshake. Throws <see cref="AuthenticationException"/> with OpenSSL's reason when the
    /// client's messages are refused (OpenSSL has then queued its alert, which is sent first), <see cref="IOException"/>
    /// when the client goes away, <see cref="OperationCanceledException"/> on <paramref name="cancellationToken"/>.</summary>
    public async Task HandshakeAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            int result, error;
            string? reason = null;
            lock (_ssl)
            {
                var ssl = Live();
                LibSsl.ERR_clear_error();
                result = LibSsl.SSL_do_handshake(ssl);
                error = result == 1 ? LibSsl.SSL_ERROR_NONE : LibSsl.SSL_get_error(ssl, result);
                if (error is not (LibSsl.SSL_ERROR_NONE or LibSsl.SSL_ERROR_WANT_READ))
                {
                    reason = LibSsl.TakeError($"SSL error {error}");
                }
            }

            await SendPendingAsync(flush: true, cancellationToken); // handshake messages, or the alert
            if (result == 1)
            {
                break;
            }

            if (reason is not null)
            {
                throw new AuthenticationException($"TLS handshake refused: {reason}");
            }

            if (!await ReceiveAsync(cancellationToken))
            {
                throw new IOException("The client closed the connection during the TLS handshake.");
            }
        }

        CaptureHandshake();
    }

    /// <summary>Records what the finished handshake negotiated.</summary>
    private unsafe void CaptureHandshake()
    {
        lock (_ssl)
        {
            var ssl = Live();
#pragma warning disable CA5397 // reports the version OpenSSL negotiated; the context allows only TLS 1.2 and 1.3
            Protocol = LibSsl.SSL_version(ssl) switch
            {
                LibSsl.TLS1_3_VERSION => SslProtocols.Tls13,
                LibSsl.TLS1_2_VERSION => SslProtocols.Tls12,
                _ => SslProtocols.None,
            };
#pragma warning restore CA5397
            var cipher = LibSsl.SSL_get_current_cipher(ssl);
            CipherSuite = cipher == 0 ? default : (System.Net.Security.TlsCipherSuite)(ushort)LibSsl.SSL_CIPHER_get_protocol_id(cipher);
            byte* alpn;
            uint alpnLength;
            LibSsl.SSL_get0_alpn_selected(ssl, &alpn, &alpnLength);
            ApplicationProtocol = alpnLength == 0 ? ReadOnlyMemory<byte>.Empty : new ReadOnlySpan<byte>(alpn, (int)alpnLength).ToArray();
            Resumed = LibSsl.SSL_session_reused(ssl) == 1;
        }
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (buffer.IsEmpty)
        {
            return 0;
        }

        while (true)
        {
            var (result, error, reason, answered) = ReadPlaintext(buffer.Span);
            if (answered)
            {
                // Reading made OpenSSL answer (a TLS 1.3 KeyUpdate, an alert): send it now. Once plaintext is in the
                // caller's buffer it must be returned, so that send is no longer cancellable (Kestrel cancels pending
                // reads on its own, e.g. HTTP/2's heartbeat).
                await SendPendingAsync(flush: true, result > 0 ? CancellationToken.None : cancellationToken);
            }

            switch (error)
            {
                case LibSsl.SSL_ERROR_NONE:
                    return result;
                case LibSsl.SSL_ERROR_ZERO_RETURN:
                    return 0; // close_notify
                case LibSsl.SSL_ERROR_WANT_READ:
                    if (!await ReceiveAsync(cancellationToken))
                    {
                        return 0; // the transport ended
                    }

                    continue;
                default:
                    throw new IOException($"TLS record refused: {reason}");
            }
        }
    }

    /// <summary>One SSL_read: its result, the SSL error, OpenSSL's reason for a failure, and whether it produced
    /// ciphertext to send (not counting what a concurrent write left in the write BIO, which that write sends).</summary>
    private unsafe (int Result, int Error, string? Reason, bool Answered) ReadPlaintext(Span<byte> buffer)
    {
        lock (_ssl)
        {
            var ssl = Live();
            var before = LibSsl.Pending(_writeBio);
            LibSsl.ERR_clear_error();
            int result;
            fixed (byte* target = buffer)
            {
                result = LibSsl.SSL_read(ssl, target, buffer.Length);
            }

            var error = result > 0 ? LibSsl.SSL_ERROR_NONE : LibSsl.SSL_get_error(ssl, result);
            var reason = error is LibSsl.SSL_ERROR_NONE or LibSsl.SSL_ERROR_WANT_READ or LibSsl.SSL_ERROR_ZERO_RETURN ? null : LibSsl.TakeError($"SSL error {error}");
            return (result, error, reason, LibSsl.Pending(_writeBio) > before);
        }
    }

    /// <summary>One SSL_write of <paramref name="plaintext"/>: the bytes taken, or a failure's reason.</summary>
    private unsafe int WritePlaintext(ReadOnlySpan<byte> plaintext, out string? reason)
    {
        lock (_ssl)
        {
            var ssl = Live();
            LibSsl.ERR_clear_error();
            int result;
            fixed (byte* source = plaintext)
            {
                result = LibSsl.SSL_write(ssl, source, plaintext.Length);
            }

            reason = result > 0 ? null : LibSsl.TakeError($"SSL error {LibSsl.SSL_get_error(ssl, result)}");
            return result;
        }
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await _writeGate.WaitAsync(cancellationToken);
        try
        {
            while (!buffer.IsEmpty)
            {
                var chunk = buffer.Length > MaxPlaintextPerWrite ? buffer[..MaxPlaintextPerWrite] : buffer;
                var result = WritePlaintext(chunk.Span, out var reason);
                if (result <= 0)
                {
                    throw new IOException($"TLS write failed: {reason}");
                }

                buffer = buffer[result..];
                MoveCiphertext();
                if (_transport.Output.UnflushedBytes >= FlushThreshold)
                {
                    await FlushTransportAsync(cancellationToken);
                }
            }
        }
        finally
        {
            _writeGate.Release();
        }
    }

    /// <summary>
    /// When set, <see cref="FlushAsync"/> queues the transport flush to the thread pool and returns at once, and the
    /// flushes that arrive before it runs go out together. The edge sets this for HTTP/2 when socket completions run
    /// inline: there every flush would otherwise be its own <c>send</c> (one per response of the connection's streams),
    /// where Kestrel's own I/O queue batches them when completions run on the pool. What a write leaves unflushed is
    /// bounded as always (a write flushes, and waits, from 64 KiB on), and <see cref="ShutdownAsync"/> flushes the rest.
    /// </summary>
    public bool CoalesceFlushes { get; set; }

    public override Task FlushAsync(CancellationToken cancellationToken)
    {
        if (CoalesceFlushes)
        {
            if (Interlocked.Exchange(ref _flushQueued, 1) == 0)
            {
                ThreadPool.UnsafeQueueUserWorkItem(static stream => _ = stream.FlushQueuedAsync(), this, preferLocal: false);
            }

            return Task.CompletedTask;
        }

        return FlushNowAsync(cancellationToken);
    }

    private async Task FlushNowAsync(CancellationToken cancellationToken)
    {
        await _writeGate.WaitAsync(cancellationToken);
        try
        {
            await FlushTransportAsync(cancellationToken);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    private async Task FlushQueuedAsync()
    {
        Volatile.Write(ref _flushQueued, 0); // a flush asked for from here on queues another
        await _writeGate.WaitAsync();
        try
        {
            if (!_transportReleased && _transport.Output.UnflushedBytes > 0)
            {
                await FlushTransportAsync(CancellationToken.None);
            }
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or ObjectDisposedException or OperationCanceledException)
        {
            // The client is gone; the connection's own reads and writes fail and end it.
        }
        finally
        {
            _writeGate.Release();
        }
    }

    /// <summary>Sends close_notify, best effort: a client that is gone already is not an error here.</summary>
    public async Task ShutdownAsync()
    {
        lock (_ssl)
        {
            if (_handle == 0)
            {
                return;
            }

            LibSsl.ERR_clear_error();
            _ = LibSsl.SSL_shutdown(_handle); // 0 or 1 alike: close_notify is queued, the client's is not awaited
            LibSsl.ERR_clear_error();
        }

        try
        {
            // The caller hands the transport back to Kestrel next: a flush still queued leaves it alone.
            await SendPendingAsync(flush: true, CancellationToken.None, releaseTransport: true);
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or ObjectDisposedException)
        {
            // The transport is closed already.
        }
    }

    /// <summary>Feeds the next ciphertext from the transport to OpenSSL; false when the transport has ended.</summary>
    private async ValueTask<bool> ReceiveAsync(CancellationToken cancellationToken)
    {
        if (_readCompleted)
        {
            return false;
        }

        var input = _transport.Input;
        ReadResult read;
        while (true)
        {
            read = await input.ReadAsync(cancellationToken);
            if (read.Buffer.IsEmpty && read.IsCanceled && !read.IsCompleted)
            {
                input.AdvanceTo(read.Buffer.End); // a CancelPendingRead on the transport: not the end, read again
                continue;
            }

            break;
        }

        var data = read.Buffer;
        if (data.IsEmpty)
        {
            input.AdvanceTo(data.End);
            _readCompleted = true;
            return false;
        }

        var taken = data.Length > MaxInputPerRead ? data.Slice(0, MaxInputPerRead) : data;
        Feed(taken);
        input.AdvanceTo(taken.End);
        return true;
    }

    /// <summary>Hands ciphertext to OpenSSL's read BIO.</summary>
    private unsafe void Feed(in System.Buffers.ReadOnlySequence<byte> ciphertext)
    {
        lock (_ssl)
        {
            Live();
            foreach (var segment in ciphertext)
            {
                fixed (byte* source = segment.Span)
                {
                    if (LibSsl.BIO_write(_readBio, source, segment.Length) != segment.Length)
                    {
                        LibSsl.ERR_clear_error();
                        throw new IOException("BIO_write failed");
                    }
                }
            }
        }
    }

    /// <summary>Moves what OpenSSL wrote into the write BIO onto the transport's output, unflushed. Caller holds the
    /// write gate.</summary>
    private unsafe void MoveCiphertext()
    {
        var output = _transport.Output;
        while (true)
        {
            lock (_ssl)
            {
                Live();
                var pending = LibSsl.Pending(_writeBio);
                if (pending == 0)
                {
                    return;
                }

                var memory = output.GetSpan(Math.Min(pending, 64 * 1024));
                int moved;
                fixed (byte* target = memory)
                {
                    moved = LibSsl.BIO_read(_writeBio, target, Math.Min(pending, memory.Length));
                }

                if (moved <= 0)
                {
                    LibSsl.ERR_clear_error();
                    return;
                }

                output.Advance(moved);
            }
        }
    }

    private async ValueTask SendPendingAsync(bool flush, CancellationToken cancellationToken, bool releaseTransport = false)
    {
        await _writeGate.WaitAsync(cancellationToken);
        try
        {
            MoveCiphertext();
            if (flush && _transport.Output.UnflushedBytes > 0)
            {
                await FlushTransportAsync(cancellationToken);
            }
        }
        finally
        {
            _transportReleased |= releaseTransport; // under the gate, which a queued flush takes too
            _writeGate.Release();
        }
    }

    private async ValueTask FlushTransportAsync(CancellationToken cancellationToken)
    {
        var flushed = await _transport.Output.FlushAsync(cancellationToken);
        if (flushed.IsCompleted || flushed.IsCanceled)
        {
            throw new IOException("The client closed the connection.");
        }
    }

    /// <summary>The SSL handle; throws once the stream is disposed. Caller holds the lock.</summary>
    private nint Live() => _handle != 0 ? _handle : throw new ObjectDisposedException(nameof(OpenSslServerStream));

    protected override void Dispose(bool disposing)
    {
        lock (_ssl)
        {
            if (_handle != 0)
            {
                LibSsl.SSL_free(_handle); // frees both BIOs
                _handle = 0;
            }
        }

        // The write gate is not disposed: an operation that still holds it must be able to release it (a
        // SemaphoreSlim whose wait handle was never asked for holds nothing to free).
        base.Dispose(disposing);
    }

    ~OpenSslServerStream() => Dispose(false);

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush() => FlushAsync().GetAwaiter().GetResult();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
