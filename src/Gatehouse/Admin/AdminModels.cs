using System.Text.Json.Serialization;
using Gatehouse.Certificates;
using Gatehouse.Sites;

namespace Gatehouse.Admin;

/// <summary>A site as the admin API shows it. A passthrough site has no issuers and no key type (null): the edge
/// holds no certificate for it.</summary>
public sealed record SiteView(string Id, IReadOnlyList<string> Hosts, IReadOnlyList<string> Backends, IReadOnlyList<string> Issuers, string Source, string? KeyType, string Mode = "offload", string ProxyProtocol = "none", ClientAuthView? ClientAuth = null, HstsView? Hsts = null, BackendTlsView? BackendTls = null, HealthCheckView? HealthCheck = null)
{
    public static SiteView From(SiteDefinition site) => FromCore(site) with { BackendTls = BackendTlsView.From(site), HealthCheck = HealthCheckView.From(site) };

    private static SiteView FromCore(SiteDefinition site) => SiteTlsViews.With(site,
        site.Mode.TerminatesTls()
            ? new(site.Id, site.Hosts, site.Backends, site.Issuers.Count > 0 ? site.Issuers : [LocalCertificateAuthority.IssuerName], SourceName(site), site.KeyType ?? "ec256", site.Mode.Name(), site.ProxyProtocol.Name())
            : new(site.Id, site.Hosts, site.Backends, [], SourceName(site), null, site.Mode.Name(), site.ProxyProtocol.Name()));

    private static string SourceName(SiteDefinition site) => site.Source == SiteSource.Config ? "config" : "api";
}

/// <summary>The body of <c>POST /v1/sites</c>. <c>mode</c> is <c>offload</c> (default) or <c>passthrough</c>;
/// <c>proxyProtocol</c> (<c>none</c>, <c>v1</c>, <c>v2</c>) applies to passthrough sites; <c>backendTls</c> to
/// reencrypt sites, <c>healthCheck</c> to HTTP sites; <c>clientAuth</c> and <c>hsts</c> to sites the edge terminates.</summary>
public sealed record AddSiteRequest(IReadOnlyList<string?>? Hosts, IReadOnlyList<string?>? Backends, IReadOnlyList<string?>? Issuers, string? KeyType = null, string? Profile = null, string? Mode = null, string? ProxyProtocol = null, ClientAuthRequest? ClientAuth = null, HstsRequest? Hsts = null, BackendTlsRequest? BackendTls = null, HealthCheckRequest? HealthCheck = null);

/// <summary>What an action on a certificate did.</summary>
public sealed record ActionView(string Certificate, string Result);

/// <summary>A certificate as the admin API shows it (never key material).</summary>

public sealed record CertificateView(
    string Id,
    IReadOnlyList<string> Names,
    string? Issuer,
    string? Serial,
    DateTimeOffset? NotBefore,
    DateTimeOffset? NotAfter,
    DateTimeOffset? NextRenewal,
    string Status,
    string? LastError,
    bool Served,
    IReadOnlyList<CertificateAttempt> History)
{
    public static CertificateView From(CertificateRecord record, bool served) =>
        new(record.Id, record.Names, record.Issuer, record.Serial, record.NotBefore, record.NotAfter,
            record.ConsecutiveFailures > 0 ? record.RetryAfter : record.RenewAfter,
            record.Status.ToString().ToLowerInvariant(), record.LastError, served, record.History);
}

/// <summary>An RFC 9457 problem document with the list of what is wrong.</summary>
public sealed record Problem(string Type, string Title, int Status, string? Detail, IReadOnlyList<ProblemError>? Errors = null);

/// <summary>One thing wrong with a request.</summary>
public sealed record ProblemError(string Path, string Message);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, WriteIndented = false)]
[JsonSerializable(typeof(SiteView))]
[JsonSerializable(typeof(List<SiteView>))]
[JsonSerializable(typeof(AddSiteRequest))]
[JsonSerializable(typeof(CertificateView))]
[JsonSerializable(typeof(List<CertificateView>))]
[JsonSerializable(typeof(Problem))]
[JsonSerializable(typeof(ActionView))]
[JsonSerializable(typeof(AcmeAccountInfo))]
[JsonSerializable(typeof(List<AcmeAccountInfo>))]
internal sealed partial class AdminJson : JsonSerializerContext;
