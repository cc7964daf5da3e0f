using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Gatehouse.Sites;

/// <summary>A site's <c>backendTls</c> as given. <paramref name="Ca"/> is PEM text (a config file's <c>caFile</c> is
/// read before it gets here); <paramref name="ClientKey"/> is plaintext PEM that only lives until it is sealed.</summary>
public sealed record BackendTlsDraft(string? Ca = null, string? ServerName = null, string? Sni = null, string? ClientCertificate = null, string? ClientKey = null, string CaField = "ca");

/// <summary>A site's <c>healthCheck</c> as given, every value as text (durations like <c>10s</c>).</summary>
public sealed record HealthCheckDraft(string? Path = null, string? Interval = null, string? Timeout = null, string? UnhealthyAfter = null, string? HealthyAfter = null, string? Passive = null, string? ReactivateAfter = null);

/// <summary>Checks the backend settings of a site (<see cref="BackendTls"/>, <see cref="BackendHealthCheck"/>);
/// every error is collected with its path, and no error message quotes key material.</summary>
public static class BackendSettingsValidator
{
    /// <summary>Limits of the health check settings.</summary>
    public static readonly (TimeSpan Min, TimeSpan Max) IntervalRange = (TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(5));

    public static readonly (TimeSpan Min, TimeSpan Max) TimeoutRange = (TimeSpan.FromMilliseconds(100), TimeSpan.FromMinutes(1));

    public static readonly (TimeSpan Min, TimeSpan Max) ReactivateRange = (TimeSpan.FromSeconds(1), TimeSpan.FromHours(1));

    public const int MaxThreshold = 10;

    /// <summary>
    /// Validates <paramref name="draft"/> for a site of <paramref name="mode"/>. Returns the settings without the
    /// client key, which comes back apart as PKCS#8 in <paramref name="clientKeyPkcs8"/> for the caller to seal and
    /// zero.
    /// </summary>
    public static BackendTls? ValidateTls(BackendTlsDraft? draft, SiteMode mode, string path, List<ValidationError> errors, out byte[]? clientKeyPkcs8)
    {
        clientKeyPkcs8 = null;
        if (draft is null)
        {
            return null;
        }

        path += ":backendTls";
        if (mode != SiteMode.Reencrypt)
        {
            errors.Add(new(path, $"only a reencrypt site speaks TLS to its backends with these settings (this one is {mode.Name()}); remove backendTls or set mode: reencrypt"));
            return null;
        }

        var before = errors.Count;
        string? caPem = null;
        if (draft.Ca is not null)
        {
            caPem = CertificatesPem(draft.Ca, $"{path}:{draft.CaField}", "a CA bundle", errors, out _);
        }

        var serverName = NameOf(draft.ServerName, $"{path}:serverName", allowAddress: true, errors);
        var sni = NameOf(draft.Sni, $"{path}:sni", allowAddress: false, errors);
        string? clientPem = null;
        if (draft.ClientCertificate is null != draft.ClientKey is null)
        {
            errors.Add(draft.ClientCertificate is null
                ? new($"{path}:clientCertificate", "a client key needs its certificate (give both, or neither)")
                : new($"{path}:clientKey", "a client certificate needs its private key (give both, or neither)"));
        }
        else if (draft.ClientCertificate is not null)
        {
            clientPem = CertificatesPem(draft.ClientCertificate, $"{path}:clientCertificate", "a client certificate", errors, out var leafPem);
            if (clientPem is not null)
            {
                clientKeyPkcs8 = KeyOf(leafPem!, draft.ClientKey!, $"{path}:clientKey", errors);
            }
        }

        if (errors.Count != before)
        {
            Zero(ref clientKeyPkcs8);
            return null;
        }

        return new BackendTls { CaPem = caPem, ServerName = serverName, Sni = sni, ClientCertificatePem = clientPem };
    }

    /// <summary>Validates <paramref name="draft"/> for a site of <paramref name="mode"/> (HTTP sites only).</summary>
    public static BackendHealthCheck? ValidateHealthCheck(HealthCheckDraft? draft, SiteMode mode, string path, List<ValidationError> errors)
    {
        if (draft is null)
        {
            return null;
        }

        path += ":healthCheck";
        if (!mode.TerminatesTls())
        {
            errors.Add(new(path, $"a {mode.Name()} site's backends are not checked over HTTP (unreachable ones are skipped for 10 s); remove healthCheck"));
            return null;
        }

        var before = errors.Count;
        var check = new BackendHealthCheck();
        string? probePath = null;
        if (draft.Path is not null)
        {
            probePath = draft.Path.Trim();
            if (!probePath.StartsWith('/') || probePath.Length > 1024 || probePath.Contains('#', StringComparison.Ordinal) || !probePath.All(c => c is > ' ' and < '\x7f'))
            {
                errors.Add(new($"{path}:path", $"'{draft.Path}' is not a request path: it starts with '/', has no spaces or fragment, at most 1024 characters (example: /healthz)"));
            }
        }
        else
        {
            foreach (var (key, given) in new[] { ("interval", draft.Interval), ("timeout", draft.Timeout), ("unhealthyAfter", draft.UnhealthyAfter), ("healthyAfter", draft.HealthyAfter) })
            {
                if (given is not null)
                {
                    errors.Add(new($"{path}:{key}", "applies to active checks, which run only with a path; set healthCheck:path (e.g. /healthz)"));
                }
            }
        }

        var interval = Span(draft.Interval, check.Interval, IntervalRange, $"{path}:interval", errors);
        var timeout = Span(draft.Timeout, check.Timeout, TimeoutRange, $"{path}:timeout", errors);
        if (timeout > interval && draft.Timeout is not null)
        {
            errors.Add(new($"{path}:timeout", $"{draft.Timeout} is longer than the interval ({FormatSpan(interval)}); a probe must end before the next one starts"));
        }

        var unhealthyAfter = Count(draft.UnhealthyAfter, check.UnhealthyAfter, $"{path}:unhealthyAfter", errors);
        var healthyAfter = Count(draft.HealthyAfter, check.HealthyAfter, $"{path}:healthyAfter", errors);
        var passive = check.Passive;
        if (draft.Passive is not null && !bool.TryParse(draft.Passive.Trim(), out passive))
        {
            errors.Add(new($"{path}:passive", $"'{draft.Passive}' is not true or false"));
        }

        var reactivate = Span(draft.ReactivateAfter, check.ReactivateAfter, ReactivateRange, $"{path}:reactivateAfter", errors);
        if (errors.Count != before)
        {
            return null;
        }

        return new BackendHealthCheck
        {
            Path = probePath,
            Interval = interval,
            Timeout = timeout,
            UnhealthyAfter = unhealthyAfter,
            HealthyAfter = healthyAfter,
            Passive = passive,
            ReactivateAfter = reactivate,
        };
    }

    /// <summary>Zeroes and forgets a plaintext key.</summary>
    public static void Zero(ref byte[]? secret)
    {
        if (secret is not null)
        {
            CryptographicOperations.ZeroMemory(secret);
            secret = null;
        }
    }

    /// <summary>A duration as written in configuration (<c>10s</c>).</summary>
    public static string FormatSpan(TimeSpan value) =>
        value.TotalMilliseconds % 1000 != 0 ? $"{value.TotalMilliseconds.ToString(CultureInfo.InvariantCulture)}ms"
        : value.TotalSeconds % 60 != 0 || value == TimeSpan.Zero ? $"{value.TotalSeconds.ToString(CultureInfo.InvariantCulture)}s"
        : value.TotalMinutes % 60 != 0 ? $"{value.TotalMinutes.ToString(CultureInfo.InvariantCulture)}m"
        : $"{value.TotalHours.ToString(CultureInfo.InvariantCulture)}h";

    /// <summary>The certificates of <paramref name="pem"/> re-exported as PEM (certificates only, nothing else kept);
    /// null with an error when there are none, or when the text holds a private key.</summary>
    private static string? CertificatesPem(string pem, string path, string what, List<ValidationError> errors, out string? firstPem)
    {
        firstPem = null;
        if (pem.Contains("PRIVATE KEY-----", StringComparison.Ordinal))
        {
            errors.Add(new(path, $"{what} holds certificates only; this text has a private key in it (give the key apart, and never a CA's key)"));
            return null;
        }

        var certificates = new X509Certificate2Collection();
        try
        {
            certificates.ImportFromPem(pem);
        }
        catch (CryptographicException)
        {
            certificates.Clear();
        }

        try
        {
            if (certificates.Count == 0)
            {
                errors.Add(new(path, $"not {what} in PEM: no '-----BEGIN CERTIFICATE-----' block could be read"));
                return null;
            }

            var text = new StringBuilder();
            foreach (var certificate in certificates)
            {
                var one = certificate.ExportCertificatePem();
                firstPem ??= one;
                text.Append(one).Append('\n');
            }

            return text.ToString();
        }
        finally
        {
            foreach (var certificate in certificates)
            {
                certificate.Dispose();
            }
        }
    }

    /// <summary>The PKCS#8 form of <paramref name="keyPem"/>, checked to be the private key of the leaf.</summary>
    private static byte[]? KeyOf(string leafPem, string keyPem, string path, List<ValidationError> errors)
    {
        if (keyPem.Contains("ENCRYPTED PRIVATE KEY", StringComparison.Ordinal))
        {
            errors.Add(new(path, "the key is encrypted; give it unencrypted (Gatehouse seals it before storing it)"));
            return null;
        }

        try
        {
            using var withKey = X509Certificate2.CreateFromPem(leafPem, keyPem);
            using var ecdsa = withKey.GetECDsaPrivateKey();
            if (ecdsa is not null)
            {
                return ecdsa.ExportPkcs8PrivateKey();
            }

            using var rsa = withKey.GetRSAPrivateKey();
            if (rsa is not null)
            {
                return rsa.ExportPkcs8PrivateKey();
            }

            errors.Add(new(path, "only ECDSA and RSA client keys are supported"));
            return null;
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException)
        {
            // The exception's text is not quoted: it can only say "malformed" or "does not match", never more.
            errors.Add(new(path, "not a PEM private key of the client certificate (unreadable, or it does not match the certificate's public key)"));
            return null;
        }
    }

    private static string? NameOf(string? value, string path, bool allowAddress, List<ValidationError> errors)
    {
        if (value is null)
        {
            return null;
        }

        var text = value.Trim();
        if (IPAddress.TryParse(text.Trim('[', ']'), out var address) && (text.Contains(':', StringComparison.Ordinal) || text.Count(c => c == '.') == 3))
        {
            if (!allowAddress)
            {
                // RFC 6066 §3: "Literal IPv4 and IPv6 addresses are not permitted in HostName."
                errors.Add(new(path, $"'{value}' is an IP address; SNI carries host names only (RFC 6066 §3)"));
                return null;
            }

            return address.ToString();
        }

        if (!HostName.TryNormalize(text, out var name, out var error) || HostName.IsWildcard(name))
        {
            errors.Add(new(path, $"'{value}': {error ?? "a wildcard is not a name to verify or send"}"));
            return null;
        }

        return name;
    }

    private static TimeSpan Span(string? text, TimeSpan fallback, (TimeSpan Min, TimeSpan Max) range, string path, List<ValidationError> errors)
    {
        if (text is null)
        {
            return fallback;
        }

        if (!Duration.TryParse(text, out var value))
        {
            errors.Add(new(path, $"'{text}' is not a duration (examples: 10s, 500ms, 1m)"));
            return fallback;
        }

        if (value < range.Min || value > range.Max)
        {
            errors.Add(new(path, $"{text} is outside {FormatSpan(range.Min)}–{FormatSpan(range.Max)}"));
            return fallback;
        }

        return value;
    }

    private static int Count(string? text, int fallback, string path, List<ValidationError> errors)
    {
        if (text is null)
        {
            return fallback;
        }

        if (!int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value is < 1 or > MaxThreshold)
        {
            errors.Add(new(path, $"'{text}' is not a whole number in 1–{MaxThreshold}"));
            return fallback;
        }

        return value;
    }
}
