using System.Formats.Asn1;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Sites;
using Gatehouse.Storage;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;

namespace Gatehouse.Edge.Tls;

/// <summary>
/// The per-site TLS policies of the edge (mutual TLS toward clients, HSTS), compiled when sites change and found by
/// site id (= certificate id) with one dictionary lookup per handshake and per request. A site whose policy did not
/// change keeps its compiled instance, and with it the TLS options already made for its certificate.
/// </summary>
public sealed class SiteTlsPolicies(ILogger<SiteTlsPolicies> logger)
{
    private volatile Dictionary<string, SiteTls> _bySite = new(StringComparer.Ordinal);

    /// <summary>The policy of site <paramref name="siteId"/>; false for sites with neither client auth nor HSTS.</summary>
    public bool TryGet(string siteId, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out SiteTls policy) =>
        _bySite.TryGetValue(siteId, out policy);

    /// <summary>Compiles the policies of a snapshot of sites and swaps them in (the site mirror's loop). When the
    /// snapshot names the keys that changed since the last one, only those sites are compiled again.</summary>
    public void Apply(MirrorSnapshot<SiteDefinition> snapshot)
    {
        var previous = _bySite;
        Dictionary<string, SiteTls> next;
        if (snapshot.ChangedKeys is { } changed)
        {
            next = new Dictionary<string, SiteTls>(previous, StringComparer.Ordinal);
            foreach (var key in changed)
            {
                var id = StoreKeys.IdOf(key, StoreKeys.SitesPrefix);
                next.Remove(id);
                if (snapshot.Items.TryGetValue(key, out var item) && item.Value.Id == id && Compile(item.Value, previous) is { } compiled)
                {
                    next[id] = compiled;
                }
            }
        }
        else
        {
            next = new Dictionary<string, SiteTls>(StringComparer.Ordinal);
            foreach (var (_, item) in snapshot.Items)
            {
                if (Compile(item.Value, previous) is { } compiled)
                {
                    next[item.Value.Id] = compiled;
                }
            }
        }

        _bySite = next;
    }

    /// <summary>The site's compiled policy (the known instance when it did not change); null when it has none.</summary>
    private SiteTls? Compile(SiteDefinition site, Dictionary<string, SiteTls> previous)
    {
        if (!site.Mode.TerminatesTls())
        {
            return null;
        }

        var hsts = HstsPolicy.For(site);
        if (site.ClientAuth is null && !hsts.Enabled)
        {
            return null;
        }

        if (previous.TryGetValue(site.Id, out var known) && ClientAuthPolicy.Same(known.ClientAuth?.Policy, site.ClientAuth) && known.Hsts == hsts)
        {
            return known;
        }

        try
        {
            return new SiteTls(site.Id, site.ClientAuth is { } policy ? new ClientCertificateValidator(site.Id, policy, logger) : null, hsts);
        }
        catch (CryptographicException ex)
        {
            // The validator checked the bundle; a record written around it must not stop every other site. A site
            // that asks for client certificates and whose bundle cannot be read is refused, never served open.
            SiteTlsLog.BadClientCa(logger, site.Id, ex.Message);
            return new SiteTls(site.Id, ClientCertificateValidator.Unusable(site.Id, site.ClientAuth!, logger), hsts);
        }
    }
}

/// <summary>One site's compiled TLS policy.</summary>
public sealed class SiteTls
{
    internal SiteTls(string siteId, ClientCertificateValidator? clientAuth, HstsPolicy hsts)
    {
        SiteId = siteId;
        ClientAuth = clientAuth;
        Hsts = hsts;
        HstsHeader = hsts.HeaderValue is { } value ? new StringValues(value) : StringValues.Empty;
        ApplyHsts = SetHstsHeader;
    }

    public string SiteId { get; }

    /// <summary>Client certificate checks; null when the site asks for none.</summary>
    public ClientCertificateValidator? ClientAuth { get; }

    public HstsPolicy Hsts { get; }

    /// <summary>The precomputed Strict-Transport-Security value; empty when HSTS is off.</summary>
    public StringValues HstsHeader { get; }

    /// <summary>The response-starting callback that sets the header (made once, so a request allocates no closure).</summary>
    internal Func<object, Task> ApplyHsts { get; }

    private Task SetHstsHeader(object state)
    {
        ((HttpContext)state).Response.Headers.StrictTransportSecurity = HstsHeader;
        return Task.CompletedTask;
    }
}

/// <summary>
/// Checks client certificates for one site policy during the handshake: chain to the site's CA bundle only (custom
/// root trust, no system roots, no revocation check), validity, the clientAuth EKU when the certificate has EKUs, and
/// the allow-lists. Makes, once per served certificate, TLS options that ask for a client certificate and share the
/// certificate's prepared context (no key is opened again); resumption is off in them, so every handshake presents
/// and verifies a certificate.
/// </summary>
public sealed class ClientCertificateValidator
{
    private static readonly Oid ClientAuthentication = new("1.3.6.1.5.5.7.3.2");

    private readonly string _siteId;
    private readonly X509ChainPolicy _chainPolicy;
    private readonly HashSet<string> _subjects;
    private readonly HashSet<string> _sans;
    private readonly bool _usable;
    private readonly ILogger _logger;
    private readonly RemoteCertificateValidationCallback _callback;
    private volatile ServedCertificateFeature? _last;

    internal ClientCertificateValidator(string siteId, ClientAuthPolicy policy, ILogger logger, bool usable = true)
    {
        _siteId = siteId;
        Policy = policy;
        _logger = logger;
        _usable = usable;
        _chainPolicy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
            DisableCertificateDownloads = true,
        };
        _chainPolicy.ApplicationPolicy.Add(ClientAuthentication);
        if (usable)
        {
            _chainPolicy.CustomTrustStore.ImportFromPem(policy.CaPem);
        }

        _subjects = new HashSet<string>(policy.AllowedSubjects, StringComparer.Ordinal);
        _sans = new HashSet<string>(policy.AllowedSans, StringComparer.Ordinal);
        _callback = Validate;
    }

    public ClientAuthPolicy Policy { get; }

    /// <summary>Whether a request to <paramref name="path"/> without a client certificate is refused (403). Only an
    /// optional site's connections can be without one.</summary>
    public bool RequiresCertificate(PathString path)
    {
        if (Policy.Mode == ClientAuthMode.Required)
        {
            return true;
        }

        var prefixes = Policy.RequiredPaths;
        for (var i = 0; i < prefixes.Count; i++)
        {
            if (path.StartsWithSegments(prefixes[i], StringComparison.Ordinal) || (prefixes[i].EndsWith('/') && path.Value?.StartsWith(prefixes[i], StringComparison.Ordinal) == true))
            {
                return true;
            }
        }

        return false;
    }

    internal static ClientCertificateValidator Unusable(string siteId, ClientAuthPolicy policy, ILogger logger) => new(siteId, policy, logger, usable: false);

    /// <summary>The connection feature for a handshake of <paramref name="certificate"/> (already prepared) under this
    /// policy; made on the first such handshake, then reused until the certificate or the policy changes.</summary>
    internal ServedCertificateFeature FeatureFor(ServedCertificate certificate)
    {
        var last = _last;
        if (last is not null && ReferenceEquals(last.Certificate, certificate))
        {
            return last;
        }

        var basis = certificate.Options!;
        var options = new SslServerAuthenticationOptions
        {
            ServerCertificateContext = basis.ServerCertificateContext,
            EnabledSslProtocols = basis.EnabledSslProtocols,
            ApplicationProtocols = basis.ApplicationProtocols,
            CipherSuitesPolicy = basis.CipherSuitesPolicy,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            AllowRenegotiation = false,
            ClientCertificateRequired = true,
            CertificateChainPolicy = _chainPolicy,
            RemoteCertificateValidationCallback = _callback,
            // A resumed session presents no certificate; without resumption every connection proves its key.
            AllowTlsResume = false,
        };
        var feature = new ServedCertificateFeature(certificate, options);
        _last = feature;
        return feature;
    }

    private bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (!_usable)
        {
            return false;
        }

        if (certificate is null)
        {
            if (Policy.Mode == ClientAuthMode.Optional)
            {
                return true;
            }

            SiteTlsLog.Rejected(_logger, _siteId, "(none)", "no client certificate");
            return false;
        }

        var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        if (errors != SslPolicyErrors.None)
        {
            SiteTlsLog.Rejected(_logger, _siteId, leaf.Subject, ChainProblem(chain, errors));
            return false;
        }

        if (_subjects.Count == 0 && _sans.Count == 0)
        {
            return true;
        }

        if (_subjects.Contains(leaf.SubjectName.Name))
        {
            return true;
        }

        foreach (var san in ClientIdentity.SubjectAlternativeNames(leaf))
        {
            if (_sans.Contains(san))
            {
                return true;
            }
        }

        SiteTlsLog.Rejected(_logger, _siteId, leaf.Subject, "neither its subject nor a SAN is allowed");
        return false;
    }

    private static string ChainProblem(X509Chain? chain, SslPolicyErrors errors)
    {
        if (chain is null)
        {
            return errors.ToString();
        }

        var flags = X509ChainStatusFlags.NoError;
        foreach (var status in chain.ChainStatus)
        {
            flags |= status.Status;
        }

        return flags == X509ChainStatusFlags.NoError ? errors.ToString() : flags.ToString();
    }
}

/// <summary>What the backend learns about a verified client certificate, computed once per certificate instance (a
/// connection's requests share it).</summary>
public sealed class ClientIdentity
{
    /// <summary>The headers the edge sets from a verified client certificate; a client's own copies are always removed.</summary>
    public static readonly string[] HeaderNames = [SubjectHeader, SansHeader, FingerprintHeader, CertificateHeader];

    public const string SubjectHeader = "X-Client-Cert-Subject";
    public const string SansHeader = "X-Client-Cert-Sans";
    public const string FingerprintHeader = "X-Client-Cert-Fingerprint";
    public const string CertificateHeader = "X-Client-Cert";

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<X509Certificate2, ClientIdentity> Known = [];

    private ClientIdentity(X509Certificate2 certificate)
    {
        Subject = HeaderSafe(certificate.SubjectName.Name);
        Sans = HeaderSafe(string.Join(",", SubjectAlternativeNames(certificate).Select(s => s.Replace(",", "%2C", StringComparison.Ordinal))));
        Fingerprint = Convert.ToHexStringLower(SHA256.HashData(certificate.RawData));
        EscapedPem = Uri.EscapeDataString(certificate.ExportCertificatePem());
    }

    /// <summary>RFC 4514 subject as .NET prints it (<c>CN=client1, O=Example</c>); bytes outside printable ASCII and
    /// '%' percent-encoded as UTF-8.</summary>
    public string Subject { get; }

    /// <summary>The SANs as <c>dns:a.example,email:x@example,uri:spiffe://...,ip:10.0.0.1</c> (commas inside a value as %2C).</summary>
    public string Sans { get; }

    /// <summary>SHA-256 of the certificate's DER, lower-case hex.</summary>
    public string Fingerprint { get; }

    /// <summary>The certificate as URL-encoded PEM (like nginx's <c>$ssl_client_escaped_cert</c>).</summary>
    public string EscapedPem { get; }

    public static ClientIdentity Of(X509Certificate2 certificate) => Known.GetValue(certificate, static c => new ClientIdentity(c));

    /// <summary>Puts the identity into the request headers (the incoming copies are gone already).</summary>
    public void AddTo(IHeaderDictionary headers)
    {
        headers[SubjectHeader] = Subject;
        headers[SansHeader] = Sans;
        headers[FingerprintHeader] = Fingerprint;
        headers[CertificateHeader] = EscapedPem;
    }

    /// <summary>The certificate's DNS, email, URI and IP SANs, in the normalized form allow-lists use
    /// (<c>dns:</c> lower case). A malformed extension yields what was read before the damage.</summary>
    public static List<string> SubjectAlternativeNames(X509Certificate2 certificate)
    {
        var names = new List<string>();
        foreach (var extension in certificate.Extensions)
        {
            if (extension.Oid?.Value != "2.5.29.17")
            {
                continue;
            }

            try
            {
                var sequence = new AsnReader(extension.RawData, AsnEncodingRules.DER).ReadSequence();
                while (sequence.HasData)
                {
                    var tag = sequence.PeekTag();
                    if (tag.TagClass != TagClass.ContextSpecific)
                    {
                        sequence.ReadEncodedValue();
                        continue;
                    }

                    switch (tag.TagValue)
                    {
                        case 1:
                            names.Add("email:" + sequence.ReadCharacterString(UniversalTagNumber.IA5String, tag));
                            break;
                        case 2:
                            names.Add("dns:" + sequence.ReadCharacterString(UniversalTagNumber.IA5String, tag).ToLowerInvariant());
                            break;
                        case 6:
                            names.Add("uri:" + sequence.ReadCharacterString(UniversalTagNumber.IA5String, tag));
                            break;
                        case 7:
                            names.Add("ip:" + new IPAddress(sequence.ReadOctetString(tag)));
                            break;
                        default:
                            sequence.ReadEncodedValue();
                            break;
                    }
                }
            }
            catch (Exception ex) when (ex is AsnContentException or ArgumentException)
            {
                // Keep what was read; a certificate with a broken SAN simply matches less.
            }
        }

        return names;
    }

    private static string HeaderSafe(string value)
    {
        foreach (var c in value)
        {
            if (c is < ' ' or > '~' or '%')
            {
                var escaped = new System.Text.StringBuilder(value.Length + 8);
                Span<byte> utf8 = stackalloc byte[4];
                foreach (var rune in value.EnumerateRunes())
                {
                    if (rune.Value is >= ' ' and <= '~' and not '%')
                    {
                        escaped.Append((char)rune.Value);
                        continue;
                    }

                    var length = rune.EncodeToUtf8(utf8);
                    for (var i = 0; i < length; i++)
                    {
                        escaped.Append('%').Append(utf8[i].ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
                    }
                }

                return escaped.ToString();
            }
        }

        return value;
    }
}

internal static partial class SiteTlsLog
{
    [LoggerMessage(EventId = 5101, Level = LogLevel.Debug, Message = "Site {SiteId}: client certificate '{Subject}' rejected: {Reason}")]
    public static partial void Rejected(ILogger logger, string siteId, string subject, string reason);

    [LoggerMessage(EventId = 5102, Level = LogLevel.Error, Message = "Site {SiteId}: its client CA bundle cannot be read ({Reason}); every handshake is refused until the site changes")]
    public static partial void BadClientCa(ILogger logger, string siteId, string reason);
}
