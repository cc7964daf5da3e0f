using System.Security.Cryptography.X509Certificates;
using Gatehouse.Sites;

namespace Gatehouse.Admin;

/// <summary><c>backendTls</c> of <c>POST /v1/sites</c> (re-encrypt sites): the CA bundle and the client certificate
/// as PEM text, the client key as unencrypted PEM (sealed before it is stored, never shown again).</summary>
public sealed record BackendTlsRequest(string? Ca = null, string? ServerName = null, string? Sni = null, string? ClientCertificate = null, string? ClientKey = null)
{
    internal BackendTlsDraft ToDraft() => new(Ca, ServerName, Sni, ClientCertificate, ClientKey);
}

/// <summary><c>healthCheck</c> of <c>POST /v1/sites</c>; durations as text (<c>10s</c>, <c>500ms</c>).</summary>
public sealed record HealthCheckRequest(string? Path = null, string? Interval = null, string? Timeout = null, int? UnhealthyAfter = null, int? HealthyAfter = null, bool? Passive = null, string? ReactivateAfter = null)
{
    internal HealthCheckDraft ToDraft() => new(
        Path, Interval, Timeout, UnhealthyAfter?.ToString(System.Globalization.CultureInfo.InvariantCulture), HealthyAfter?.ToString(System.Globalization.CultureInfo.InvariantCulture),
        Passive is { } passive ? (passive ? "true" : "false") : null, ReactivateAfter);
}

/// <summary>A re-encrypt site's backend TLS as shown: CA subjects (null: the system trust), the names, and the client
/// certificate's public facts. Never key material.</summary>
public sealed record BackendTlsView(IReadOnlyList<string>? Ca, string? ServerName, string? Sni, ClientCertificateView? ClientCertificate)
{
    public static BackendTlsView? From(SiteDefinition site)
    {
        if (site.Mode != SiteMode.Reencrypt)
        {
            return null;
        }

        var tls = site.BackendTls ?? new BackendTls();
        return new(Subjects(tls.CaPem), tls.ServerName, tls.Sni, ClientCertificateView.From(tls.ClientCertificatePem));
    }

    private static List<string>? Subjects(string? pem)
    {
        if (pem is null)
        {
            return null;
        }

        var certificates = new X509Certificate2Collection();
        certificates.ImportFromPem(pem);
        var subjects = certificates.Select(c => c.Subject).ToList();
        foreach (var certificate in certificates)
        {
            certificate.Dispose();
        }

        return subjects;
    }
}

/// <summary>The client certificate a re-encrypt site presents to its backends.</summary>
public sealed record ClientCertificateView(string Subject, string Serial, DateTimeOffset NotAfter)
{
    public static ClientCertificateView? From(string? pem)
    {
        if (pem is null)
        {
            return null;
        }

        using var leaf = X509Certificate2.CreateFromPem(pem);
        return new(leaf.Subject, leaf.SerialNumber, new DateTimeOffset(leaf.NotAfter.ToUniversalTime(), TimeSpan.Zero));
    }
}

/// <summary>A site's health check settings as shown.</summary>
public sealed record HealthCheckView(string? Path, string Interval, string Timeout, int UnhealthyAfter, int HealthyAfter, bool Passive, string ReactivateAfter)
{
    public static HealthCheckView? From(SiteDefinition site) => site.HealthCheck is not { } check ? null : new(
        check.Path,
        BackendSettingsValidator.FormatSpan(check.Interval),
        BackendSettingsValidator.FormatSpan(check.Timeout),
        check.UnhealthyAfter,
        check.HealthyAfter,
        check.Passive,
        BackendSettingsValidator.FormatSpan(check.ReactivateAfter));
}
