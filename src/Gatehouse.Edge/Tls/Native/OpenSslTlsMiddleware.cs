using System.Buffers;
using System.IO.Pipelines;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.Extensions.Logging;

namespace Gatehouse.Edge.Tls.Native;

/// <summary>
/// Connection middleware on the HTTPS listener, between the <see cref="SniGate"/> and Kestrel's HTTPS middleware:
/// terminates TLS with OpenSSL (<see cref="OpenSslServerStream"/>) for the connections whose site does not ask for
/// client certificates, on the engine's one <c>SSL_CTX</c> with the certificate the gate chose
/// (<see cref="OpenSslCertificate"/>), and hands the plaintext connection to what follows Kestrel's HTTPS middleware.
/// Everything else (client-certificate sites, TLS-ALPN-01 challenges, a certificate OpenSSL refuses) goes on to
/// Kestrel's HTTPS middleware.
/// Kestrel learns the outcome through the same connection features its own TLS sets: HTTP/2 is chosen by ALPN and
/// requires TLS 1.2 or later, as with SslStream.
/// </summary>
public sealed class OpenSslTlsMiddleware
{
    private readonly TimeSpan _handshakeTimeout;
    private readonly bool _inline = SocketCompletions.RunInline; // found once, at start-up
    private readonly ILogger<OpenSslTlsMiddleware> _logger;

    /// <summary>The one OpenSSL context every connection terminated here runs on; null when it could not be built
    /// (logged once), and then every connection goes on to Kestrel's HTTPS middleware.</summary>
    private readonly OpenSslServerContext? _context;
    private ConnectionDelegate? _afterTls;

    /// <summary>Builds the engine's context; when OpenSSL refuses it, logs why and lets every connection through.</summary>
    /// <param name="handshakeTimeout">How long the client has to finish the handshake.</param>
    /// <param name="logger">Handshake failures (Debug, as Kestrel logs its own), certificates OpenSSL refuses (Error, once each), a context that cannot be built (Error).</param>
    public OpenSslTlsMiddleware(TimeSpan handshakeTimeout, ILogger<OpenSslTlsMiddleware> logger)
    {
        _handshakeTimeout = handshakeTimeout;
        _logger = logger;
        try
        {
            _context = OpenSslServerContext.Create();
        }
        catch (Exception ex) when (ex is System.Security.Cryptography.CryptographicException or PlatformNotSupportedException)
        {
            OpenSslTlsLog.EngineFailed(logger, ex.Message);
        }
    }

    /// <summary>Whether the engine can run in this process; when not, <see cref="Unavailable"/> says why.</summary>
    public static bool IsAvailable => OpenSslServerContext.Unavailable is null;

    /// <summary>Why the engine cannot run in this process; null when it can.</summary>
    public static string? Unavailable => OpenSslServerContext.Unavailable;

    /// <summary>The OpenSSL version the engine runs on, as "OpenSSL 3.0.19"; null when it cannot run.</summary>
    public static string? Version => OpenSslServerContext.Version;

    /// <summary>
    /// Registered after Kestrel's HTTPS middleware (<c>listen.Use(middleware.AfterTls)</c>): remembers the rest of the
    /// pipeline, which a connection this middleware terminated continues with. Changes nothing in the pipeline.
    /// </summary>
    public ConnectionDelegate AfterTls(ConnectionDelegate next)
    {
        _afterTls = next;
        return next;
    }

    public async Task OnConnectionAsync(ConnectionContext connection, ConnectionDelegate next)
    {
        if (_afterTls is not { } afterTls
            || _context is not { } context
            || connection.Features.Get<ServedCertificateFeature>() is not { AsksForClientCertificate: false } served
            || CertificateFor(served.Certificate, context) is not { } certificate)
        {
            await next(connection);
            return;
        }

        var transport = connection.Transport;
        OpenSslServerStream tls;
        try
        {
            tls = new OpenSslServerStream(context, certificate, transport);
        }
        catch (AuthenticationException ex)
        {
            OpenSslTlsLog.HandshakeFailed(_logger, connection.ConnectionId, ex.Message);
            return;
        }

        using var _ = tls;
        using (var timeout = new CancellationTokenSource(_handshakeTimeout))
        {
            try
            {
                await tls.HandshakeAsync(timeout.Token);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested)
            {
                OpenSslTlsLog.HandshakeTimedOut(_logger, connection.ConnectionId);
                connection.Abort();
                return;
            }
            catch (AuthenticationException ex)
            {
                OpenSslTlsLog.HandshakeFailed(_logger, connection.ConnectionId, ex.Message);
                return;
            }
            catch (Exception ex) when (ex is IOException or ConnectionResetException or ConnectionAbortedException)
            {
                return; // the client went away during the handshake
            }
        }

        // HTTP/2 answers many streams over one connection; with inline socket completions their flushes are batched
        // here, as Kestrel's I/O queue batches them otherwise (see OpenSslServerStream.CoalesceFlushes).
        tls.CoalesceFlushes = _inline && tls.ApplicationProtocol.Span.SequenceEqual("h2"u8);
        var tlsFeatures = new TlsFeatures(tls);
        connection.Features.Set<ITlsConnectionFeature>(tlsFeatures);
        connection.Features.Set<ITlsHandshakeFeature>(tlsFeatures);
        connection.Features.Set<ITlsApplicationProtocolFeature>(tlsFeatures);
        var pool = connection.Features.Get<IMemoryPoolFeature>()?.MemoryPool ?? MemoryPool<byte>.Shared;
        var reader = PipeReader.Create(tls, new StreamPipeReaderOptions(pool, bufferSize: 4096, minimumReadSize: 1024, leaveOpen: true));
        var writer = PipeWriter.Create(tls, new StreamPipeWriterOptions(pool, minimumBufferSize: 4096, leaveOpen: true));
        connection.Transport = new DuplexPipe(reader, writer);
        try
        {
            await afterTls(connection);
        }
        finally
        {
            await reader.CompleteAsync();
            try
            {
                await writer.CompleteAsync(); // writes what is still buffered
            }
            catch (Exception ex) when (ex is IOException or InvalidOperationException or ObjectDisposedException or ConnectionResetException or ConnectionAbortedException)
            {
                // The client is gone.
            }

            await tls.ShutdownAsync();
            connection.Transport = transport;
        }
    }

    /// <summary>What the engine gives the certificate's connections, made on its first use; null (logged once) when
    /// OpenSSL refuses it.</summary>
    private OpenSslCertificate? CertificateFor(ServedCertificate served, OpenSslServerContext context)
    {
        var certificate = served.GetOpenSslCertificate(context, out var failure, out var failedNow);
        if (failedNow)
        {
            OpenSslTlsLog.ContextFailed(_logger, served.Id, served.Serial, failure ?? "unknown");
        }

        return certificate;
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }

    /// <summary>What Kestrel and the request pipeline read about the connection's TLS (no client certificate: sites
    /// that ask for one are not terminated here).</summary>
    private sealed class TlsFeatures(OpenSslServerStream tls) : ITlsConnectionFeature, ITlsHandshakeFeature, ITlsApplicationProtocolFeature
    {
        public X509Certificate2? ClientCertificate
        {
            get => null;
            set => throw new NotSupportedException("The OpenSSL engine does not take client certificates.");
        }

        public Task<X509Certificate2?> GetClientCertificateAsync(CancellationToken cancellationToken) => Task.FromResult<X509Certificate2?>(null);

        public SslProtocols Protocol => tls.Protocol;

        public System.Net.Security.TlsCipherSuite? NegotiatedCipherSuite => tls.CipherSuite;

        public ReadOnlyMemory<byte> ApplicationProtocol => tls.ApplicationProtocol;

#pragma warning disable SYSLIB0058 // the legacy algorithm properties: the interface still requires them
        public CipherAlgorithmType CipherAlgorithm => CipherAlgorithmType.None;

        public int CipherStrength => 0;

        public HashAlgorithmType HashAlgorithm => HashAlgorithmType.None;

        public int HashStrength => 0;

        public ExchangeAlgorithmType KeyExchangeAlgorithm => ExchangeAlgorithmType.None;

        public int KeyExchangeStrength => 0;
#pragma warning restore SYSLIB0058
    }
}

internal static partial class OpenSslTlsLog
{
    [LoggerMessage(EventId = 5101, Level = LogLevel.Debug, Message = "Connection {ConnectionId}: TLS handshake failed: {Reason}")]
    public static partial void HandshakeFailed(ILogger logger, string connectionId, string reason);

    [LoggerMessage(EventId = 5102, Level = LogLevel.Debug, Message = "Connection {ConnectionId}: TLS handshake not finished in time; closed")]
    public static partial void HandshakeTimedOut(ILogger logger, string connectionId);

    [LoggerMessage(EventId = 5104, Level = LogLevel.Error, Message = "The OpenSSL engine could not build its TLS context, so .NET's TLS serves every connection: {Reason}")]
    public static partial void EngineFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 5103, Level = LogLevel.Error, Message = "Certificate {CertificateId} (serial {Serial}) cannot be served by the OpenSSL engine, so .NET's TLS serves it: {Reason}")]
    public static partial void ContextFailed(ILogger logger, string certificateId, string serial, string reason);
}
