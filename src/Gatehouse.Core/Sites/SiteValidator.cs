using System.Net;
using System.Net.Sockets;

namespace Gatehouse.Sites;

/// <summary>One thing wrong with a piece of desired state: where it is and what is wrong with it.</summary>
/// <param name="Path">Where: a configuration key such as <c>sites:1:hosts:0</c>, or an API field.</param>
/// <param name="Message">What is wrong, for a person.</param>
public sealed record ValidationError(string Path, string Message)
{
    public override string ToString() => $"{Path}: {Message}";
}

/// <summary>
/// Checks sites as given by a person and turns them into <see cref="SiteDefinition"/>s. Every error is collected,
/// so one run reports all of them.
/// </summary>
public static class SiteValidator
{
    /// <summary>A site as given, before validation.</summary>
    public sealed record Draft(string Path, IReadOnlyList<string?> Hosts, IReadOnlyList<string?> Backends, IReadOnlyList<string?> Issuers, string? KeyType = null, string? Profile = null, string? Mode = null, string? ProxyProtocol = null, ClientAuthDraft? ClientAuth = null, HstsDraft? Hsts = null, BackendTlsDraft? BackendTls = null, HealthCheckDraft? HealthCheck = null);

    /// <summary>Validates <paramref name="drafts"/> together (a host may belong to one site only).</summary>
    /// <param name="drafts">The sites to check.</param>
    /// <param name="source">Where they come from.</param>
    /// <param name="knownIssuers">Issuer names that exist; <see langword="null"/> skips the check.</param>
    /// <param name="errors">Receives every error found.</param>
    /// <param name="cipher">Seals a backend client key for its site's record; without it (the config file) a client
    /// key is refused, since it would have to be stored in plaintext.</param>
    public static IReadOnlyList<SiteDefinition> Validate(IReadOnlyList<Draft> drafts, SiteSource source, IReadOnlySet<string>? knownIssuers, List<ValidationError> errors, Keys.EnvelopeCipher? cipher = null)
    {
        var sites = new List<SiteDefinition>(drafts.Count);
        var owners = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var draft in drafts)
        {
            var before = errors.Count;
            var hosts = new List<string>();
            if (draft.Hosts.Count == 0)
            {
                errors.Add(new($"{draft.Path}:hosts", "a site needs at least one host name"));
            }
            else if (draft.Hosts.Count > SiteRepository.MaxHostsPerSite)
            {
                errors.Add(new($"{draft.Path}:hosts", $"a site has at most {SiteRepository.MaxHostsPerSite} host names (one certificate covers them all)"));
            }

            for (var i = 0; i < draft.Hosts.Count; i++)
            {
                var path = $"{draft.Path}:hosts:{i}";
                if (!HostName.TryNormalize(draft.Hosts[i], out var host, out var error))
                {
                    errors.Add(new(path, error));
                    continue;
                }

                if (owners.TryGetValue(host, out var owner))
                {
                    errors.Add(new(path, $"'{host}' is already claimed by {owner}"));
                    continue;
                }

                owners[host] = draft.Path;
                hosts.Add(host);
            }

            if (!SiteModes.TryParseMode(draft.Mode, out var mode))
            {
                errors.Add(new($"{draft.Path}:mode", $"'{draft.Mode}' is not a site mode (offload, reencrypt, passthrough)"));
            }

            if (!SiteModes.TryParseProxyProtocol(draft.ProxyProtocol, out var proxyProtocol))
            {
                errors.Add(new($"{draft.Path}:proxyProtocol", $"'{draft.ProxyProtocol}' is not a PROXY protocol version (none, v1, v2)"));
            }
            else if (proxyProtocol != ProxyProtocolVersion.None && mode != SiteMode.Passthrough)
            {
                errors.Add(new($"{draft.Path}:proxyProtocol", "only a passthrough site sends a PROXY protocol header (an offload site's backends get X-Forwarded-For)"));
            }

            var backends = new List<string>();
            if (draft.Backends.Count == 0)
            {
                errors.Add(new($"{draft.Path}:backends", mode == SiteMode.Passthrough
                    ? "a site needs at least one backend (host:port or tcp://host:port)"
                    : "a site needs at least one backend URL"));
            }

            for (var i = 0; i < draft.Backends.Count; i++)
            {
                var valid = mode == SiteMode.Passthrough
                    ? TryValidateTcpBackend(draft.Backends[i], out var backend, out var error)
                    : TryValidateBackend(draft.Backends[i], out backend, out error);
                if (valid && mode == SiteMode.Reencrypt && !backend!.StartsWith("https://", StringComparison.Ordinal))
                {
                    // Re-encrypt means the second hop is TLS too; a plain backend would silently undo that.
                    errors.Add(new($"{draft.Path}:backends:{i}", $"'{draft.Backends[i]}' is not https; a reencrypt site's backends are https URLs (use mode: offload for plain HTTP backends)"));
                }
                else if (valid)
                {
                    backends.Add(backend!);
                }
                else
                {
                    errors.Add(new($"{draft.Path}:backends:{i}", error!));
                }
            }

            var issuers = new List<string>();
            for (var i = 0; i < draft.Issuers.Count; i++)
            {
                var issuer = draft.Issuers[i];
                if (string.IsNullOrWhiteSpace(issuer) || (knownIssuers is not null && !knownIssuers.Contains(issuer)))
                {
                    var known = knownIssuers is null ? "" : $" (known: {string.Join(", ", knownIssuers.Order(StringComparer.Ordinal))})";
                    errors.Add(new($"{draft.Path}:issuers:{i}", $"'{issuer}' is not a configured issuer{known}"));
                    continue;
                }

                issuers.Add(issuer);
            }

            var keyType = draft.KeyType?.Trim().ToLowerInvariant();
            if (keyType is not null && !SiteDefinition.KeyTypes.Contains(keyType))
            {
                errors.Add(new($"{draft.Path}:keyType", $"'{draft.KeyType}' is not a key type ({string.Join(", ", SiteDefinition.KeyTypes)})"));
            }

            var profile = string.IsNullOrWhiteSpace(draft.Profile) ? null : draft.Profile.Trim();
            if (profile is not null && (profile.Length > 64 || !profile.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
            {
                errors.Add(new($"{draft.Path}:profile", $"'{draft.Profile}' is not a profile name (1–64 characters of [A-Za-z0-9._-])"));
            }

            if (!mode.TerminatesTls())
            {
                // The backend presents its own certificate; certificate settings would silently do nothing.
                foreach (var (key, given) in new[] { ("issuers", draft.Issuers.Count > 0), ("keyType", draft.KeyType is not null), ("profile", draft.Profile is not null) })
                {
                    if (given)
                    {
                        errors.Add(new($"{draft.Path}:{key}", $"a {mode.Name()} site has no certificate at the edge (its backends present their own); remove {key}"));
                    }
                }
            }

            var clientAuth = SiteTlsValidation.ValidateClientAuth(draft.ClientAuth, mode, $"{draft.Path}:clientAuth", errors, DateTimeOffset.UtcNow);
            var hsts = SiteTlsValidation.ValidateHsts(draft.Hsts, mode, $"{draft.Path}:hsts", errors);

            var backendTls = BackendSettingsValidator.ValidateTls(draft.BackendTls, mode, draft.Path, errors, out var clientKey);
            var healthCheck = BackendSettingsValidator.ValidateHealthCheck(draft.HealthCheck, mode, draft.Path, errors);
            if (clientKey is not null && cipher is null)
            {
                errors.Add(new($"{draft.Path}:backendTls:clientKey", "a private key never goes in the config file; add this site through the admin API or `gatehouse sites add --backend-client-cert/--backend-client-key`, which seals the key in the store"));
            }

            if (errors.Count == before && clientKey is not null)
            {
                // Sealed for the record that holds it, so the ciphertext cannot be moved to another site.
                backendTls = backendTls! with { SealedClientKey = cipher!.Seal(Storage.StoreKeys.Site(hosts[0]), clientKey) };
            }

            BackendSettingsValidator.Zero(ref clientKey);
            if (errors.Count == before)
            {
                sites.Add(new SiteDefinition
                {
                    Id = hosts[0],
                    Hosts = hosts,
                    Backends = backends,
                    Issuers = issuers,
                    KeyType = keyType is "ec256" ? null : keyType,
                    Profile = profile,
                    Mode = mode,
                    ProxyProtocol = proxyProtocol,
                    ClientAuth = clientAuth,
                    Hsts = hsts,
                    BackendTls = backendTls,
                    HealthCheck = healthCheck,
                    Source = source,
                });
            }
        }

        return sites;
    }

    /// <summary>A backend is an absolute http or https URL with a host, and no user info, query or fragment.</summary>
    public static bool TryValidateBackend(string? value, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? backend, [System.Diagnostics.CodeAnalysis.NotNullWhen(false)] out string? error)
    {
        backend = null;
        if (string.IsNullOrWhiteSpace(value) || !Uri.TryCreate(value, UriKind.Absolute, out var uri))
        {
            error = $"'{value}' is not an absolute URL (example: http://10.0.0.5:8080)";
            return false;
        }

        if (uri.Scheme is not ("http" or "https"))
        {
            error = uri.Scheme == "tcp"
                ? $"'{value}' is a TCP backend; only a passthrough site (mode: passthrough) has those, an offload site's backend is an http or https URL"
                : $"'{value}' has scheme '{uri.Scheme}'; a backend is http or https";
            return false;
        }

        if (string.IsNullOrEmpty(uri.Host) || !string.IsNullOrEmpty(uri.UserInfo) || !string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.Fragment))
        {
            error = $"'{value}' must name a host and have no user info, query or fragment";
            return false;
        }

        backend = uri.GetLeftPart(UriPartial.Path);
        error = null;
        return true;
    }

    /// <summary>
    /// A passthrough backend is <c>host:port</c> or <c>tcp://host:port</c>: an IPv4 address, an IPv6 address in
    /// brackets or a host name, and a port (1–65535), nothing else. Normalized to <c>tcp://host:port</c> (names
    /// lower-cased), the form stored and shown.
    /// </summary>
    public static bool TryValidateTcpBackend(string? value, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? backend, [System.Diagnostics.CodeAnalysis.NotNullWhen(false)] out string? error)
    {
        backend = null;
        var text = value?.Trim() ?? "";
        const string Example = "host:port or tcp://host:port, e.g. 10.0.0.5:443 or tcp://[2001:db8::5]:443";
        if (text.StartsWith("tcp://", StringComparison.OrdinalIgnoreCase))
        {
            text = text[6..];
        }
        else if (text.Contains("://", StringComparison.Ordinal))
        {
            error = $"'{value}' is a URL; a passthrough site's backend is {Example} (the edge does not speak HTTP to it)";
            return false;
        }

        string host;
        string port;
        if (text.StartsWith('['))
        {
            var close = text.IndexOf("]:", StringComparison.Ordinal);
            if (close < 0)
            {
                error = $"'{value}' is not {Example}";
                return false;
            }

            host = text[1..close];
            port = text[(close + 2)..];
            if (!IPAddress.TryParse(host, out var v6) || v6.AddressFamily != AddressFamily.InterNetworkV6 || host.Contains('%', StringComparison.Ordinal))
            {
                error = $"'{value}': '{host}' in brackets is not an IPv6 address";
                return false;
            }

            host = $"[{v6}]";
        }
        else
        {
            var colon = text.LastIndexOf(':');
            if (colon <= 0)
            {
                error = $"'{value}' has no port; a passthrough site's backend is {Example}";
                return false;
            }

            if (text.IndexOf(':') != colon)
            {
                error = $"'{value}': write an IPv6 address in brackets, e.g. [2001:db8::5]:443";
                return false;
            }

            host = text[..colon];
            port = text[(colon + 1)..];
            if (host.All(c => char.IsAsciiDigit(c) || c == '.'))
            {
                if (host.Count(c => c == '.') != 3 || !IPAddress.TryParse(host, out var v4))
                {
                    error = $"'{value}': '{host}' is not an IPv4 address";
                    return false;
                }

                host = v4.ToString();
            }
            else if (!HostName.TryNormalize(host, out var name, out var hostError) || HostName.IsWildcard(name))
            {
                error = $"'{value}': {hostError ?? "a backend cannot be a wildcard"}";
                return false;
            }
            else
            {
                host = name;
            }
        }

        if (port.Length is 0 or > 5 || !port.All(char.IsAsciiDigit) || port[0] == '0' || int.Parse(port, System.Globalization.CultureInfo.InvariantCulture) > 65535)
        {
            error = $"'{value}' has no valid port (1–65535); a passthrough site's backend is {Example}";
            return false;
        }

        backend = $"tcp://{host}:{port}";
        error = null;
        return true;
    }
}
