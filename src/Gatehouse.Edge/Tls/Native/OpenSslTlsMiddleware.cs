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
/// client certificates, with the certificate the gate chose and that certificate's own kept <c>SSL_CTX</c>, and hands
/// the plaintext connection to what follows Kestrel's HTTPS middleware. Everything else (client-certificate sites,
/// TLS-ALPN-01 challenges, a certificate whose context cannot be built) goes on to Kestrel's HTTPS middleware.
/// Kestrel learns the outcome through the same connection features its own TLS sets: HTTP/2 is chosen by ALPN and
/// requires TLS 1.2 or later, as with SslStream.
/// </summary>
/// <param name="handshakeTimeout">How long the client has to finish the handshake.</param>
/// <param name="logger">Handshake failures (Debug, as Kestrel logs its own), contexts that cannot be built (Error, once each).</param>
public sealed class OpenSslTlsMiddleware(TimeSpan handshakeTimeout, ILogger<OpenSslTlsMiddleware> logger)
{
    private ConnectionDelegate? _afterTls;

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
            || connection.Features.Get<ServedCertificateFeature>() is not { AsksForClientCertificate: false } served
            || Context(served.Certificate) is not { } context)
        {
            await next(connection);
            return;
        }

        var transport = connection.Transport;
        using var tls = new OpenSslServerStream(context, transport);
        using (var timeout = new CancellationTokenSource(handshakeTimeout))
        {
            try
            {
                await tls.HandshakeAsync(timeout.Token);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested)
            {
                OpenSslTlsLog.HandshakeTimedOut(logger, connection.ConnectionId);
                connection.Abort();
                return;
            }
            catch (AuthenticationException ex)
            {
                OpenSslTlsLog.HandshakeFailed(logger, connection.ConnectionId, ex.Message);
                return;
            }
            catch (Exception ex) when (ex is IOException or ConnectionResetException or ConnectionAbortedException)
            {
                return; // the client went away during the handshake
            }
        }

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

    /// <summary>The certificate's kept OpenSSL context, built on its first use; null (logged once) when it cannot be.</summary>
    private OpenSslServerContext? Context(ServedCertificate certificate)
    {
        var context = certificate.GetOpenSslContext(out var failure, out var failedNow);
        if (failedNow)
        {
            OpenSslTlsLog.ContextFailed(logger, certificate.Id, certificate.Serial, failure ?? "unknown");
        }

        return context;
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

    [LoggerMessage(EventId = 5103, Level = LogLevel.Error, Message = "Certificate {CertificateId} (serial {Serial}) cannot be served by the OpenSSL engine, so .NET's TLS serves it: {Reason}")]
    public static partial void ContextFailed(ILogger logger, string certificateId, string serial, string reason);
}
