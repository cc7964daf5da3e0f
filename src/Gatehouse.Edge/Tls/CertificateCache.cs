using System.Collections.Immutable;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Certificates;
using Gatehouse.Keys;
using Gatehouse.Sites;
using Gatehouse.Storage;
using Microsoft.Extensions.Logging;

namespace Gatehouse.Edge.Tls;

/// <summary>A certificate ready to serve: its prepared TLS options and what it covers.</summary>
public sealed class ServedCertificate
{
    internal ServedCertificate(string id, string serial, IReadOnlyList<string> names, DateTimeOffset notAfter, X509Certificate2 leaf, SslServerAuthenticationOptions options)
    {
        Id = id;
        Serial = serial;
        Names = names;
        NotAfter = notAfter;
        Leaf = leaf;
        Options = options;
        Feature = new ServedCertificateFeature(this);
    }

    /// <summary>The connection feature that carries this certificate from the SNI gate to the handshake.</summary>
    public ServedCertificateFeature Feature { get; }

    /// <summary>The certificate (= site) id.</summary>
    public string Id { get; }

    public string Serial { get; }

    public IReadOnlyList<string> Names { get; }

    public DateTimeOffset NotAfter { get; }

    /// <summary>The leaf, with its private key.</summary>
    public X509Certificate2 Leaf { get; }

    /// <summary>Prepared server options (certificate context with chain, protocols, ALPN); shared by handshakes.</summary>
    public SslServerAuthenticationOptions Options { get; }
}

/// <summary>
/// The edge's certificates, rebuilt off the handshake path whenever the certificate records change and swapped
/// in one reference write. A handshake does one table lookup. Certificates whose record did not change are reused,
/// so a change costs one key decryption, not one per certificate.
/// </summary>
public sealed class CertificateCache
{
    /// <summary>TLS 1.2 and 1.3 with AEAD suites and forward secrecy only.</summary>
    private static readonly CipherSuitesPolicy AeadOnly = new(
    [
        TlsCipherSuite.TLS_AES_128_GCM_SHA256,
        TlsCipherSuite.TLS_AES_256_GCM_SHA384,
        TlsCipherSuite.TLS_CHACHA20_POLY1305_SHA256,
        TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        TlsCipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]);

    private static readonly List<SslApplicationProtocol> Alpn = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11];

    private readonly EnvelopeCipher _cipher;
    private readonly ILogger<CertificateCache> _logger;
    private readonly Lock _rebuild = new();
    private volatile Table _table = new(new HostTable<ServedCertificate>([]), ImmutableDictionary<string, ServedCertificate>.Empty, ImmutableDictionary<string, ServedCertificate>.Empty, 0);

    public CertificateCache(EnvelopeCipher cipher, ILogger<CertificateCache> logger)
    {
        _cipher = cipher;
        _logger = logger;
    }

    /// <summary>The store revision the current table reflects.</summary>
    public long Revision => _table.Revision;

    /// <summary>How many site certificates are served.</summary>
    public int Count => _table.ById.Count;

    /// <summary>Finds the certificate to present for an SNI name: exact name, then one-level wildcard.</summary>
    public bool TryMatch(ReadOnlySpan<char> serverName, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out ServedCertificate certificate) =>
        _table.Names.TryMatch(serverName, out certificate);

    /// <summary>An internal certificate (id starting with '_'), e.g. the admin listener's.</summary>
    public ServedCertificate? GetInternal(string id) => _table.Internal.GetValueOrDefault(id);

    /// <summary>Builds a new table from a snapshot of certificate records and swaps it in.</summary>
    public void Apply(MirrorSnapshot<CertificateRecord> snapshot)
    {
        lock (_rebuild)
        {
            var previous = _table;
            var sites = ImmutableDictionary.CreateBuilder<string, ServedCertificate>(StringComparer.Ordinal);
            var internals = ImmutableDictionary.CreateBuilder<string, ServedCertificate>(StringComparer.Ordinal);
            var names = new List<KeyValuePair<string, ServedCertificate>>();
            foreach (var (key, item) in snapshot.Items)
            {
                var record = item.Value;
                if (!record.HasChain)
                {
                    continue;
                }

                var isInternal = record.IsInternal;
                var known = (isInternal ? previous.Internal : previous.ById).GetValueOrDefault(record.Id);
                var served = known is not null && known.Serial == record.Serial ? known : TryPrepare(key, record) ?? known;
                if (served is null)
                {
                    continue;
                }

                if (isInternal)
                {
                    internals[served.Id] = served;
                    continue;
                }

                sites[served.Id] = served;
                foreach (var name in served.Names)
                {
                    names.Add(new(name, served));
                }
            }

            _table = new Table(new HostTable<ServedCertificate>(names), sites.ToImmutable(), internals.ToImmutable(), snapshot.Revision);
            CertificateCacheLog.Swapped(_logger, sites.Count, internals.Count, snapshot.Revision);
        }

    }

    /// <summary>Opens the sealed key and prepares the TLS context; null (and an error log) when the record is unusable.</summary>
    private ServedCertificate? TryPrepare(string key, CertificateRecord record)
    {
        try
        {
            var chain = new X509Certificate2Collection();
            chain.ImportFromPem(record.ChainPem);
            using var plaintext = _cipher.Open(key, record.SealedKey);
            using var privateKey = ECDsa.Create();
            privateKey.ImportPkcs8PrivateKey(plaintext.Span, out _);
            using var publicLeaf = chain[0];
            var leaf = publicLeaf.CopyWithPrivateKey(privateKey);
            var intermediates = new X509Certificate2Collection();
            for (var i = 1; i < chain.Count; i++)
            {
                intermediates.Add(chain[i]);
            }

            var options = new SslServerAuthenticationOptions
            {
                ServerCertificateContext = SslStreamCertificateContext.Create(leaf, intermediates, offline: true),
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                ApplicationProtocols = Alpn,
                CipherSuitesPolicy = AeadOnly,
                ClientCertificateRequired = false,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                AllowRenegotiation = false,
                AllowTlsResume = true,
            };
            var names = LeafNames(leaf);
            return new ServedCertificate(record.Id, leaf.SerialNumber, names, new DateTimeOffset(leaf.NotAfter.ToUniversalTime()), leaf, options);
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException or FormatException)
        {
            // EnvelopeAuthenticationException is a CryptographicException and names the record, never key material.
            CertificateCacheLog.Unusable(_logger, record.Id, ex.Message);
            return null;
        }
    }

    /// <summary>The DNS names the leaf really covers (its SAN), which is what the SNI table may serve it for.</summary>
    private static string[] LeafNames(X509Certificate2 leaf)
    {
        var names = new List<string>();
        foreach (var extension in leaf.Extensions)
        {
            if (extension is X509SubjectAlternativeNameExtension san)
            {
                names.AddRange(san.EnumerateDnsNames());
            }
        }

        return [.. names];
    }

    private sealed record Table(HostTable<ServedCertificate> Names, ImmutableDictionary<string, ServedCertificate> ById, ImmutableDictionary<string, ServedCertificate> Internal, long Revision);
}

internal static partial class CertificateCacheLog
{
    [LoggerMessage(EventId = 4001, Level = LogLevel.Debug, Message = "Certificate table swapped: {Sites} site certificates, {Internal} internal, at revision {Revision}")]
    public static partial void Swapped(ILogger logger, int sites, int @internal, long revision);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Error, Message = "Certificate {CertificateId} cannot be served: {Reason}")]
    public static partial void Unusable(ILogger logger, string certificateId, string reason);
}
