using System.Collections.Immutable;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Challenges;
using Gatehouse.Keys;
using Gatehouse.Storage;
using Microsoft.Extensions.Logging;

namespace Gatehouse.Edge.Challenges;

/// <summary>
/// Answers RFC 8737 TLS-ALPN-01 validations: a handshake that offers <c>acme-tls/1</c> for a host with a challenge
/// certificate in the store gets that certificate and the protocol <c>acme-tls/1</c>, then the connection ends (no
/// application data is exchanged). Challenge records are few and short-lived, so they are prepared when they arrive.
/// </summary>
public sealed partial class TlsAlpnResponder(EnvelopeCipher cipher, TimeProvider time, ILogger<TlsAlpnResponder> logger)
{
    /// <summary>The ALPN protocol id of RFC 8737.</summary>
    public static readonly SslApplicationProtocol AcmeTls1 = new("acme-tls/1"u8.ToArray());

    private volatile ImmutableDictionary<string, Answer> _answers = ImmutableDictionary.Create<string, Answer>(StringComparer.OrdinalIgnoreCase);

    /// <summary>The prepared handshake options for <paramref name="host"/>'s challenge, if one is live.</summary>
    public bool TryGet(string host, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out SslServerAuthenticationOptions? options)
    {
        options = _answers.TryGetValue(host, out var answer) && answer.Expires > time.GetUtcNow() ? answer.Options : null;
        return options is not null;
    }

    /// <summary>Takes the current set of challenge records (from a store mirror).</summary>
    public void Apply(MirrorSnapshot<TlsAlpnChallengeRecord> snapshot)
    {
        var previous = _answers;
        var next = ImmutableDictionary.CreateBuilder<string, Answer>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, item) in snapshot.Items)
        {
            var record = item.Value;
            if (previous.TryGetValue(record.Host, out var known) && known.Revision == item.ModRevision)
            {
                next[record.Host] = known;
            }
            else if (Prepare(key, record) is { } options)
            {
                next[record.Host] = new Answer(options, record.Expires, item.ModRevision);
            }
        }

        _answers = next.ToImmutable();
    }

    private SslServerAuthenticationOptions? Prepare(string key, TlsAlpnChallengeRecord record)
    {
        try
        {
            using var certificate = X509Certificate2.CreateFromPem(record.CertificatePem);
            using var pkcs8 = cipher.Open(key, record.SealedKey);
            using var ecdsa = ECDsa.Create();
            ecdsa.ImportPkcs8PrivateKey(pkcs8.Span, out _);
            var withKey = certificate.CopyWithPrivateKey(ecdsa);
            return new SslServerAuthenticationOptions
            {
                ServerCertificateContext = SslStreamCertificateContext.Create(withKey, additionalCertificates: null, offline: true),
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                ApplicationProtocols = [AcmeTls1],
                ClientCertificateRequired = false,
                AllowRenegotiation = false,
            };
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException)
        {
            LogUnusable(logger, record.Host, ex.Message);
            return null;
        }
    }

    [LoggerMessage(EventId = 4101, Level = LogLevel.Error, Message = "TLS-ALPN-01 challenge for {Host} cannot be used: {Reason}")]
    private static partial void LogUnusable(ILogger logger, string host, string reason);

    private sealed record Answer(SslServerAuthenticationOptions Options, DateTimeOffset Expires, long Revision);
}

/// <summary>Set by the SNI gate on an <c>acme-tls/1</c> connection: the challenge answer to present.</summary>
public sealed class AcmeTlsAlpnFeature(SslServerAuthenticationOptions options)
{
    public SslServerAuthenticationOptions Options { get; } = options;
}
