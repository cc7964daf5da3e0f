using System.Runtime.InteropServices;

namespace Gatehouse.Edge.Tls.Native;

/// <summary>
/// The part of OpenSSL 3's libssl and libcrypto the edge's own TLS engine calls (<see cref="OpenSslServerStream"/>).
/// These are the same libraries .NET's cryptography loads on Linux (<c>libssl.so.3</c>), so an <c>X509*</c> from an
/// <see cref="System.Security.Cryptography.X509Certificates.X509Certificate2"/> and an <c>EVP_PKEY*</c> from
/// <c>ECDsaOpenSsl.DuplicateKeyHandle</c> can be handed to them directly: no key is exported to do so.
/// Constants are OpenSSL 3.0's (ssl.h, tls1.h, bio.h).
/// </summary>
internal static unsafe partial class LibSsl
{
    private const string Ssl = "libssl.so.3";
    private const string Crypto = "libcrypto.so.3";

    public const int TLS1_2_VERSION = 0x0303;
    public const int TLS1_3_VERSION = 0x0304;

    public const int SSL_ERROR_NONE = 0;
    public const int SSL_ERROR_SSL = 1;
    public const int SSL_ERROR_WANT_READ = 2;
    public const int SSL_ERROR_WANT_WRITE = 3;
    public const int SSL_ERROR_SYSCALL = 5;
    public const int SSL_ERROR_ZERO_RETURN = 6;

    public const int SSL_TLSEXT_ERR_OK = 0;
    public const int SSL_TLSEXT_ERR_ALERT_FATAL = 2;

    public const ulong SSL_OP_NO_COMPRESSION = 1UL << 17;
    public const ulong SSL_OP_CIPHER_SERVER_PREFERENCE = 1UL << 22;
    public const ulong SSL_OP_NO_RENEGOTIATION = 1UL << 30;

    private const int SSL_CTRL_MODE = 33;
    private const int SSL_CTRL_SET_SESS_CACHE_SIZE = 42;
    private const int SSL_CTRL_CHAIN_CERT = 89;
    private const int SSL_CTRL_SET_MIN_PROTO_VERSION = 123;
    private const long SSL_MODE_RELEASE_BUFFERS = 0x10;
    private const int BIO_CTRL_PENDING = 10;

    [LibraryImport(Crypto)]
    public static partial ulong OpenSSL_version_num();

    [LibraryImport(Ssl)]
    public static partial nint TLS_server_method();

    [LibraryImport(Ssl)]
    public static partial nint SSL_CTX_new(nint method);

    [LibraryImport(Ssl)]
    public static partial void SSL_CTX_free(nint ctx);

    [LibraryImport(Ssl)]
    public static partial ulong SSL_CTX_set_options(nint ctx, ulong options);

    [LibraryImport(Ssl)]
    private static partial long SSL_CTX_ctrl(nint ctx, int cmd, long larg, nint parg);

    public static bool SetMinProtocolVersion(nint ctx, int version) => SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, version, 0) == 1;

    /// <summary>Frees a connection's read and write buffers while it is idle (nginx does the same).</summary>
    public static void SetReleaseBuffers(nint ctx) => SSL_CTX_ctrl(ctx, SSL_CTRL_MODE, SSL_MODE_RELEASE_BUFFERS, 0);

    public static void SetSessionCacheSize(nint ctx, long size) => SSL_CTX_ctrl(ctx, SSL_CTRL_SET_SESS_CACHE_SIZE, size, 0);

    [LibraryImport(Ssl, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SSL_CTX_set_cipher_list(nint ctx, string list);

    [LibraryImport(Ssl, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SSL_CTX_set_ciphersuites(nint ctx, string list);

    [LibraryImport(Ssl)]
    public static partial int SSL_use_certificate(nint ssl, nint x509);

    [LibraryImport(Ssl)]
    public static partial int SSL_use_PrivateKey(nint ssl, nint pkey);

    [LibraryImport(Ssl)]
    private static partial long SSL_ctrl(nint ssl, int cmd, long larg, nint parg);

    /// <summary>SSL_add1_chain_cert: the connection takes its own reference to <paramref name="x509"/>.</summary>
    public static bool AddChainCertificate(nint ssl, nint x509) => SSL_ctrl(ssl, SSL_CTRL_CHAIN_CERT, 1, x509) == 1;

    [LibraryImport(Ssl)]
    public static partial int SSL_set_session_id_context(nint ssl, byte* id, uint length);

    [LibraryImport(Ssl)]
    public static partial void SSL_CTX_set_alpn_select_cb(nint ctx, delegate* unmanaged[Cdecl]<nint, byte**, byte*, byte*, uint, nint, int> callback, nint arg);

    [LibraryImport(Ssl)]
    public static partial nint SSL_new(nint ctx);

    [LibraryImport(Ssl)]
    public static partial void SSL_free(nint ssl);

    [LibraryImport(Ssl)]
    public static partial void SSL_set_bio(nint ssl, nint readBio, nint writeBio);

    [LibraryImport(Ssl)]
    public static partial void SSL_set_accept_state(nint ssl);

    [LibraryImport(Ssl)]
    public static partial int SSL_do_handshake(nint ssl);

    [LibraryImport(Ssl)]
    public static partial int SSL_read(nint ssl, byte* buffer, int count);

    [LibraryImport(Ssl)]
    public static partial int SSL_write(nint ssl, byte* buffer, int count);

    [LibraryImport(Ssl)]
    public static partial int SSL_shutdown(nint ssl);

    [LibraryImport(Ssl)]
    public static partial int SSL_get_error(nint ssl, int result);

    [LibraryImport(Ssl)]
    public static partial int SSL_version(nint ssl);

    [LibraryImport(Ssl)]
    public static partial int SSL_session_reused(nint ssl);

    [LibraryImport(Ssl)]
    public static partial void SSL_get0_alpn_selected(nint ssl, byte** data, uint* length);

    [LibraryImport(Ssl)]
    public static partial nint SSL_get_current_cipher(nint ssl);

    [LibraryImport(Ssl)]
    public static partial uint SSL_CIPHER_get_protocol_id(nint cipher);

    [LibraryImport(Crypto)]
    public static partial nint BIO_s_mem();

    [LibraryImport(Crypto)]
    public static partial nint BIO_new(nint method);

    [LibraryImport(Crypto)]
    public static partial int BIO_free(nint bio);

    [LibraryImport(Crypto)]
    public static partial int BIO_read(nint bio, byte* buffer, int count);

    [LibraryImport(Crypto)]
    public static partial int BIO_write(nint bio, byte* buffer, int count);

    [LibraryImport(Crypto)]
    private static partial long BIO_ctrl(nint bio, int cmd, long larg, nint parg);

    public static int Pending(nint bio) => (int)BIO_ctrl(bio, BIO_CTRL_PENDING, 0, 0);

    [LibraryImport(Crypto)]
    public static partial ulong ERR_get_error();

    [LibraryImport(Crypto)]
    public static partial void ERR_clear_error();

    [LibraryImport(Crypto)]
    private static partial void ERR_error_string_n(ulong error, byte* buffer, nuint length);

    /// <summary>The thread's first queued OpenSSL error as text (and the queue emptied), or <paramref name="fallback"/>.
    /// OpenSSL's error strings name the failing check, never key material.</summary>
    public static string TakeError(string fallback)
    {
        var error = ERR_get_error();
        ERR_clear_error();
        if (error == 0)
        {
            return fallback;
        }

        var buffer = stackalloc byte[256];
        ERR_error_string_n(error, buffer, 256);
        return Marshal.PtrToStringUTF8((nint)buffer) ?? fallback;
    }
}
