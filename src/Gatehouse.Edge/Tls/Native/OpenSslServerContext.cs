using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Gatehouse.Edge.Tls.Native;

/// <summary>
/// The edge's one OpenSSL <c>SSL_CTX</c>: the TLS policy (TLS 1.2 and 1.3, AEAD suites with forward secrecy, no
/// renegotiation, no compression), ALPN (h2, then http/1.1), the session cache and the ticket keys. It holds no
/// certificate: each connection gets its certificate's leaf, key and chain and its session-id context from
/// <see cref="OpenSslCertificate"/>, so a served certificate costs no context of its own (OpenSSL 3.0's
/// <c>SSL_CTX_new</c> takes about 200 µs and 12 KiB). Sessions still resume only on the certificate that made them:
/// the ticket keys and the session cache are shared, but OpenSSL resumes a session (a TLS 1.2 session ID or ticket, a
/// TLS 1.3 ticket) only on a connection with the session-id context it was made with (<c>ssl_get_prev_session</c>),
/// and each certificate has its own. Connections hold their own OpenSSL reference to the context, so freeing this
/// handle while they run is safe.
/// </summary>
internal sealed unsafe class OpenSslServerContext : SafeHandle
{
    /// <summary>The TLS 1.2 suites: ECDHE key exchange, AES-GCM or ChaCha20-Poly1305.</summary>
    internal const string Tls12Ciphers = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:@SECLEVEL=2";

    /// <summary>The TLS 1.3 suites (all of them are AEAD).</summary>
    internal const string Tls13Suites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

    /// <summary>Sessions the context remembers for TLS 1.2 session-ID resumption, over all certificates (OpenSSL's
    /// default is 20,480; tickets need no server-side memory).</summary>
    private const long SessionCacheSize = 10_240;

    private static readonly Lazy<string?> Unavailability = new(FindUnavailability);

    internal OpenSslServerContext() : base(0, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == 0;

    /// <summary>Why this engine cannot run in this process (not Linux, no OpenSSL 3); null when it can.</summary>
    public static string? Unavailable => Unavailability.Value;

    /// <summary>The OpenSSL version this process loaded, as "OpenSSL 3.0.19"; null when the engine cannot run.</summary>
    public static string? Version => Unavailable is null && LibSsl.OpenSSL_version_num() is var v
        ? $"OpenSSL {v >> 28}.{(v >> 20) & 0xff}.{(v >> 4) & 0xff}"
        : null;

    /// <summary>Builds the context. Throws <see cref="CryptographicException"/> naming the OpenSSL call that failed.</summary>
    public static OpenSslServerContext Create()
    {
        if (Unavailable is { } why)
        {
            throw new PlatformNotSupportedException(why);
        }

        var context = new OpenSslServerContext();
        LibSsl.ERR_clear_error();
        var ctx = LibSsl.SSL_CTX_new(LibSsl.TLS_server_method());
        if (ctx == 0)
        {
            throw Failure("SSL_CTX_new");
        }

        context.SetHandle(ctx);
        try
        {
            if (!LibSsl.SetMinProtocolVersion(ctx, LibSsl.TLS1_2_VERSION))
            {
                throw Failure("SSL_CTX_set_min_proto_version");
            }

            LibSsl.SSL_CTX_set_options(ctx, LibSsl.SSL_OP_NO_RENEGOTIATION | LibSsl.SSL_OP_NO_COMPRESSION | LibSsl.SSL_OP_CIPHER_SERVER_PREFERENCE);
            Check(LibSsl.SSL_CTX_set_cipher_list(ctx, Tls12Ciphers), "SSL_CTX_set_cipher_list");
            Check(LibSsl.SSL_CTX_set_ciphersuites(ctx, Tls13Suites), "SSL_CTX_set_ciphersuites");
            LibSsl.SetReleaseBuffers(ctx);
            LibSsl.SetSessionCacheSize(ctx, SessionCacheSize);
            LibSsl.SSL_CTX_set_alpn_select_cb(ctx, &SelectApplicationProtocol, 0);
            return context;
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    protected override bool ReleaseHandle()
    {
        LibSsl.SSL_CTX_free(handle);
        return true;
    }

    /// <summary>
    /// ALPN (RFC 7301) on the server: h2 when the client offers it, else http/1.1 or http/1.0 (Kestrel's HTTP/1.x serves
    /// both), whichever the client lists first; a client that offers protocols but none of these gets the fatal alert no_application_protocol (§3.2); one that offers none gets no ALPN.
    /// <paramref name="selected"/> must point into <paramref name="offered"/>, which OpenSSL keeps for the call.
    /// </summary>
    [UnmanagedCallersOnly(CallConvs = [typeof(System.Runtime.CompilerServices.CallConvCdecl)])]
    private static int SelectApplicationProtocol(nint ssl, byte** selected, byte* selectedLength, byte* offered, uint offeredLength, nint arg)
    {
        var list = new ReadOnlySpan<byte>(offered, (int)offeredLength);
        var http11 = -1;
        for (var i = 0; i < list.Length;)
        {
            int length = list[i];
            if (length == 0 || i + 1 + length > list.Length)
            {
                return LibSsl.SSL_TLSEXT_ERR_ALERT_FATAL; // malformed list
            }

            var name = list.Slice(i + 1, length);
            if (name.SequenceEqual("h2"u8))
            {
                *selected = offered + i + 1;
                *selectedLength = (byte)length;
                return LibSsl.SSL_TLSEXT_ERR_OK;
            }

            if (http11 < 0 && (name.SequenceEqual("http/1.1"u8) || name.SequenceEqual("http/1.0"u8)))
            {
                http11 = i;
            }

            i += 1 + length;
        }

        if (http11 < 0)
        {
            return LibSsl.SSL_TLSEXT_ERR_ALERT_FATAL;
        }

        *selected = offered + http11 + 1;
        *selectedLength = offered[http11];
        return LibSsl.SSL_TLSEXT_ERR_OK;
    }

    private static void Check(int result, string call)
    {
        if (result != 1)
        {
            throw Failure(call);
        }
    }

    private static CryptographicException Failure(string call) => new($"{call} failed: {LibSsl.TakeError("no OpenSSL error queued")}");

    private static string? FindUnavailability()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "the OpenSSL engine runs on Linux only";
        }

        try
        {
            // Certificates and keys are handed over as .NET's own X509* and EVP_PKEY* pointers, so the library loaded
            // here must be the one .NET's cryptography uses (not, say, an app-local copy of another version).
            var version = LibSsl.OpenSSL_version_num();
            var dotnet = (ulong)SafeEvpPKeyHandle.OpenSslVersion;
            return version < 0x3000_0000UL ? $"OpenSSL 3 is needed; libcrypto.so.3 reports version 0x{version:x}"
                : version != dotnet ? $"libcrypto.so.3 reports version 0x{version:x}, but .NET's cryptography uses 0x{dotnet:x}"
                : null;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return $"OpenSSL 3 (libssl.so.3) could not be loaded: {ex.Message}";
        }
    }
}
