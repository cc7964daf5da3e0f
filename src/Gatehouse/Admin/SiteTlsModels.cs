using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Sites;

namespace Gatehouse.Admin;

/// <summary>A site's mutual TLS as the admin API shows it: the CA bundle by its certificates' subjects (the PEM is not
/// repeated).</summary>
public sealed record ClientAuthView(string Mode, IReadOnlyList<string> CaSubjects, IReadOnlyList<string> AllowedSubjects, IReadOnlyList<string> AllowedSans, IReadOnlyList<string> RequiredPaths);

/// <summary>A site's HSTS as the admin API shows it; <c>default</c> says it comes from the issuer type (on for ACME
/// issuers, off for the local CA), not from the site.</summary>
public sealed record HstsView(bool Enabled, string? Header, bool Default);

/// <summary><c>clientAuth</c> in <c>POST /v1/sites</c>: <c>mode</c> (none, optional, required), <c>ca</c> (the client
/// CA bundle as PEM), allow-lists and, for optional mode, the path prefixes that need a certificate.</summary>
public sealed record ClientAuthRequest(string? Mode, string? Ca, IReadOnlyList<string?>? AllowedSubjects = null, IReadOnlyList<string?>? AllowedSans = null, IReadOnlyList<string?>? RequiredPaths = null)
{
    public ClientAuthDraft ToDraft() => new(Mode, Ca, AllowedSubjects ?? [], AllowedSans ?? [], RequiredPaths ?? []);
}

/// <summary><c>hsts</c> in <c>POST /v1/sites</c>: <c>{"enabled": false}</c> turns it off; otherwise <c>maxAge</c>
/// (e.g. <c>"365d"</c>), <c>includeSubdomains</c>, <c>preload</c>. Absent: the default for the site's issuers.</summary>
public sealed record HstsRequest(bool? Enabled = null, string? MaxAge = null, bool? IncludeSubdomains = null, bool? Preload = null)
{
    public HstsDraft ToDraft() => Enabled == false ? new HstsDraft("off")
        : MaxAge is null && IncludeSubdomains is null && Preload is null ? new HstsDraft("on")
        : new HstsDraft(null, MaxAge, Text(IncludeSubdomains), Text(Preload));

    private static string? Text(bool? flag) => flag is { } value ? (value ? "true" : "false") : null;
}

/// <summary>Adds the TLS policy fields to a <see cref="SiteView"/>.</summary>
internal static class SiteTlsViews
{
    public static SiteView With(SiteDefinition site, SiteView view)
    {
        if (!site.Mode.TerminatesTls())
        {
            return view;
        }

        var hsts = HstsPolicy.For(site);
        return view with
        {
            ClientAuth = site.ClientAuth is { } policy ? new ClientAuthView(policy.Mode.ToString().ToLowerInvariant(), CaSubjects(policy.CaPem), policy.AllowedSubjects, policy.AllowedSans, policy.RequiredPaths) : null,
            Hsts = new HstsView(hsts.Enabled, hsts.HeaderValue, site.Hsts is null),
        };
    }

    /// <summary>One line for a table: <c>max-age=31536000 (default)</c>, <c>off</c>.</summary>
    public static string Describe(HstsView? hsts) =>
        hsts is null ? "-" : (hsts.Header ?? "off") + (hsts.Default ? " (default)" : "");

    /// <summary>One line for a table: <c>required: CN=Clients CA</c>, <c>-</c>.</summary>
    public static string Describe(ClientAuthView? clientAuth) =>
        clientAuth is null ? "-" : string.Create(CultureInfo.InvariantCulture, $"{clientAuth.Mode}: {string.Join("; ", clientAuth.CaSubjects)}");

    private static List<string> CaSubjects(string pem)
    {
        var certificates = new X509Certificate2Collection();
        certificates.ImportFromPem(pem);
        var subjects = new List<string>(certificates.Count);
        foreach (var certificate in certificates)
        {
            subjects.Add(certificate.Subject);
            certificate.Dispose();
        }

        return subjects;
    }
}
