using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Gatehouse.Edge.Tls.Native;

/// <summary>
/// What the edge's OpenSSL engine gives each connection of one served certificate: the leaf, its private key as an
/// OpenSSL <c>EVP_PKEY</c>, the intermediates, and a random session-id context of its own, so a session resumes only
/// on the certificate that made it. OpenSSL takes its own references to the leaf, key and intermediates for each
/// connection (<see cref="ApplyTo"/>), so this object may be collected while connections still use them.
/// </summary>
internal sealed class OpenSslCertificate : IDisposable
{
    /// <summary>The length of the session-id context (OpenSSL allows up to 32 bytes).</summary>
    private const int SessionContextLength = 32;

    private readonly X509Certificate2 _leaf;
    private readonly SafeEvpPKeyHandle _key;
    private readonly X509Certificate2[] _intermediates;
    private readonly byte[] _sessionContext;

    private OpenSslCertificate(X509Certificate2 leaf, SafeEvpPKeyHandle key, X509Certificate2[] intermediates)
    {
        _leaf = leaf;
        _key = key;
        _intermediates = intermediates;
        _sessionContext = RandomNumberGenerator.GetBytes(SessionContextLength);
    }

    /// <summary>
    /// Takes <paramref name="leaf"/> (public), its <paramref name="privateKey"/> (an OpenSSL key, as .NET makes them on
    /// Linux) and the <paramref name="intermediates"/>, and checks once on a connection of <paramref name="context"/>
    /// that OpenSSL accepts them together. Throws <see cref="CryptographicException"/> naming the check that failed (a
    /// key that is not the leaf's, a key that is not OpenSSL's). The caller keeps ownership of its arguments.
    /// </summary>
    public static OpenSslCertificate Create(OpenSslServerContext context, X509Certificate2 leaf, AsymmetricAlgorithm privateKey, X509Certificate2Collection intermediates)
    {
        var certificate = new OpenSslCertificate(leaf, KeyHandleOf(privateKey), [.. intermediates]);
        try
        {
            LibSsl.ERR_clear_error();
            var ssl = LibSsl.SSL_new(context.DangerousGetHandle());
            GC.KeepAlive(context);
            if (ssl == 0)
            {
                throw new CryptographicException($"SSL_new failed: {LibSsl.TakeError("no OpenSSL error queued")}");
            }

            try
            {
                certificate.ApplyTo(ssl);
            }
            finally
            {
                LibSsl.SSL_free(ssl);
            }

            return certificate;
        }
        catch
        {
            certificate.Dispose();
            throw;
        }
    }

    /// <summary>Gives connection <paramref name="ssl"/> the leaf, key, chain and session-id context (OpenSSL copies or
    /// references each). Throws <see cref="CryptographicException"/> naming the call that failed.</summary>
    public unsafe void ApplyTo(nint ssl)
    {
        Check(LibSsl.SSL_use_certificate(ssl, _leaf.Handle), "SSL_use_certificate");
        Check(LibSsl.SSL_use_PrivateKey(ssl, _key.DangerousGetHandle()), "SSL_use_PrivateKey");
        foreach (var intermediate in _intermediates)
        {
            if (!LibSsl.AddChainCertificate(ssl, intermediate.Handle))
            {
                throw Failure("SSL_add1_chain_cert");
            }
        }

        fixed (byte* id = _sessionContext)
        {
            Check(LibSsl.SSL_set_session_id_context(ssl, id, SessionContextLength), "SSL_set_session_id_context");
        }

        GC.KeepAlive(_leaf);
        GC.KeepAlive(_key);
        GC.KeepAlive(_intermediates);
    }

    /// <summary>Releases this object's reference to the key (the leaf and intermediates belong to the caller).</summary>
    public void Dispose() => _key.Dispose();

    /// <summary>The key as a new OpenSSL EVP_PKEY reference, released with the returned handle.</summary>
    private static SafeEvpPKeyHandle KeyHandleOf(AsymmetricAlgorithm key) => key switch
    {
        ECDsaOpenSsl ecdsa => ecdsa.DuplicateKeyHandle(),
        RSAOpenSsl rsa => rsa.DuplicateKeyHandle(),
        _ => throw new CryptographicException($"the certificate's key ({key.GetType().Name}) is not an OpenSSL key"),
    };

    private static void Check(int result, string call)
    {
        if (result != 1)
        {
            throw Failure(call);
        }
    }

    private static CryptographicException Failure(string call) => new($"{call} failed: {LibSsl.TakeError("no OpenSSL error queued")}");
}
