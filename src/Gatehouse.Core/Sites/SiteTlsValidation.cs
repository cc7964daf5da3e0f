using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Gatehouse.Sites;

/// <summary>A site's <c>clientAuth</c> as given, before validation.</summary>
/// <param name="Mode">none, optional or required.</param>
/// <param name="Ca">The client CA bundle's PEM text (from <c>ca</c>, or read from <c>caFile</c> by the caller).</param>
/// <param name="AllowedSubjects">Subject DNs accepted.</param>
/// <param name="AllowedSans">SANs accepted (<c>dns:</c>, <c>email:</c>, <c>uri:</c>).</param>
/// <param name="RequiredPaths">Optional mode: path prefixes that need a certificate.</param>
/// <param name="CaKey">The key the bundle came from (<c>ca</c> or <c>caFile</c>), for error paths; with
/// <c>caFile</c> and a null <paramref name="Ca"/> the caller has reported why the file could not be read.</param>
public sealed record ClientAuthDraft(string? Mode, string? Ca, IReadOnlyList<string?> AllowedSubjects, IReadOnlyList<string?> AllowedSans, IReadOnlyList<string?> RequiredPaths, string CaKey = "ca");

/// <summary>A site's <c>hsts</c> as given: a scalar (<c>off</c>, <c>on</c>) or the map's values as text.</summary>
public sealed record HstsDraft(string? Scalar, string? MaxAge = null, string? IncludeSubdomains = null, string? Preload = null);

/// <summary>Checks <c>clientAuth</c> and <c>hsts</c> of a site (part of <see cref="SiteValidator"/>); every error has
/// a path, none quotes key material.</summary>
public static class SiteTlsValidation
{
    /// <summary>The longest max-age accepted (a larger one is almost surely a typo).</summary>
    private static readonly TimeSpan MaxAgeLimit = TimeSpan.FromDays(3650);

    /// <summary>Validates <paramref name="draft"/>; null for mode none (or no draft), or when it has errors.</summary>
    public static ClientAuthPolicy? ValidateClientAuth(ClientAuthDraft? draft, SiteMode siteMode, string path, List<ValidationError> errors, DateTimeOffset now)
    {
        if (draft is null)
        {
            return null;
        }

        var before = errors.Count;
        if (!siteMode.TerminatesTls())
        {
            errors.Add(new(path, $"a {siteMode.Name()} site does not terminate TLS at the edge, so the edge cannot ask its clients for certificates (its backends can); remove clientAuth"));
            return null;
        }

        ClientAuthMode mode;
        switch (draft.Mode?.Trim().ToUpperInvariant())
        {
            case "NONE":
                mode = ClientAuthMode.None;
                break;
            case "OPTIONAL":
                mode = ClientAuthMode.Optional;
                break;
            case "REQUIRED":
                mode = ClientAuthMode.Required;
                break;
            case null or "":
                errors.Add(new(path + ":mode", "required: none, optional or required"));
                return null;
            default:
                errors.Add(new(path + ":mode", $"'{draft.Mode}' is not a client authentication mode (none, optional, required)"));
                return null;
        }

        if (mode == ClientAuthMode.None)
        {
            if (draft.Ca is not null || draft.AllowedSubjects.Count > 0 || draft.AllowedSans.Count > 0 || draft.RequiredPaths.Count > 0)
            {
                errors.Add(new(path, "mode none asks for no certificate; remove the other clientAuth keys (or choose optional or required)"));
            }

            return null;
        }

        var caPem = ValidateCaBundle(draft.Ca, draft.CaKey, path, errors, now);
        var subjects = new List<string>();
        for (var i = 0; i < draft.AllowedSubjects.Count; i++)
        {
            if (TryNormalizeSubject(draft.AllowedSubjects[i], out var subject))
            {
                subjects.Add(subject);
            }
            else
            {
                errors.Add(new($"{path}:allowedSubjects:{i}", $"'{draft.AllowedSubjects[i]}' is not a distinguished name (example: CN=client1, O=Example)"));
            }
        }

        var sans = new List<string>();
        for (var i = 0; i < draft.AllowedSans.Count; i++)
        {
            if (TryNormalizeSan(draft.AllowedSans[i], out var san))
            {
                sans.Add(san);
            }
            else
            {
                errors.Add(new($"{path}:allowedSans:{i}", $"'{draft.AllowedSans[i]}' is not a SAN to match: write dns:NAME, email:ADDRESS or uri:URI"));
            }
        }

        var paths = new List<string>();
        if (mode == ClientAuthMode.Required && draft.RequiredPaths.Count > 0)
        {
            errors.Add(new(path + ":requiredPaths", "mode required asks every connection for a certificate already; requiredPaths is for mode optional"));
        }

        for (var i = 0; i < draft.RequiredPaths.Count; i++)
        {
            var prefix = draft.RequiredPaths[i]?.Trim();
            if (string.IsNullOrEmpty(prefix) || prefix[0] != '/' || prefix.Contains('?', StringComparison.Ordinal) || prefix.Contains('#', StringComparison.Ordinal) || prefix.Any(char.IsWhiteSpace))
            {
                errors.Add(new($"{path}:requiredPaths:{i}", $"'{draft.RequiredPaths[i]}' is not a path prefix (starts with '/', no query, no spaces; example: /admin)"));
                continue;
            }

            paths.Add(prefix);
        }

        return errors.Count > before || caPem is null
            ? null
            : new ClientAuthPolicy { Mode = mode, CaPem = caPem, AllowedSubjects = subjects, AllowedSans = sans, RequiredPaths = paths };
    }

    /// <summary>Validates <paramref name="draft"/>; null when not given (the default applies) or when it has errors.</summary>
    public static HstsPolicy? ValidateHsts(HstsDraft? draft, SiteMode siteMode, string path, List<ValidationError> errors)
    {
        if (draft is null)
        {
            return null;
        }

        if (!siteMode.TerminatesTls())
        {
            errors.Add(new(path, $"a {siteMode.Name()} site's HTTP never passes through the edge, so the edge cannot add HSTS; remove hsts"));
            return null;
        }

        if (draft.Scalar is not null)
        {
            switch (draft.Scalar.Trim().ToUpperInvariant())
            {
                case "OFF" or "FALSE":
                    return HstsPolicy.Off;
                case "ON" or "TRUE":
                    return HstsPolicy.AcmeDefault;
                default:
                    errors.Add(new(path, $"'{draft.Scalar}' is not off, on or a map {{maxAge, includeSubdomains, preload}}"));
                    return null;
            }
        }

        var before = errors.Count;
        var maxAge = HstsPolicy.DefaultMaxAge;
        if (draft.MaxAge is not null && !TryParseMaxAge(draft.MaxAge, out maxAge))
        {
            errors.Add(new(path + ":maxAge", $"'{draft.MaxAge}' is not a max-age: whole seconds or a number with d, h, m or s (example: 365d), 0 – 3650d"));
        }

        var includeSubdomains = Flag(draft.IncludeSubdomains, path + ":includeSubdomains", errors);
        var preload = Flag(draft.Preload, path + ":preload", errors);
        if (preload && (!includeSubdomains || maxAge < HstsPolicy.PreloadMinimum))
        {
            errors.Add(new(path + ":preload", "the preload list needs includeSubdomains: true and a maxAge of at least 365d (31536000 s)"));
        }

        return errors.Count > before ? null : new HstsPolicy { Enabled = true, MaxAgeSeconds = (long)maxAge.TotalSeconds, IncludeSubdomains = includeSubdomains, Preload = preload };
    }

    /// <summary>A max-age: whole seconds, or a whole number with d, h, m or s; 0 to ten years.</summary>
    public static bool TryParseMaxAge(string? text, out TimeSpan maxAge)
    {
        maxAge = default;
        var value = text?.Trim() ?? "";
        long unit = value.Length == 0 ? 1 : value[^1] switch { 'd' => 86400, 'h' => 3600, 'm' => 60, 's' => 1, _ => 0 };
        var digits = unit == 0 ? value : value[..^1];
        unit = unit == 0 ? 1 : unit;
        if (digits.Length is 0 or > 12 || !long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var number))
        {
            return false;
        }

        maxAge = TimeSpan.FromSeconds(number * unit);
        return maxAge <= MaxAgeLimit;
    }

    /// <summary>Normalizes a subject DN to the form .NET prints a certificate's subject in, so both compare ordinally.</summary>
    public static bool TryNormalizeSubject(string? text, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? subject)
    {
        subject = null;
        if (string.IsNullOrWhiteSpace(text) || !text.Contains('=', StringComparison.Ordinal))
        {
            return false;
        }

        try
        {
            subject = new X500DistinguishedName(text.Trim()).Name;
            return subject.Length > 0;
        }
        catch (CryptographicException)
        {
            return false;
        }
    }

    /// <summary>Normalizes <c>dns:NAME</c> (lower case), <c>email:ADDRESS</c> (as given) or <c>uri:URI</c> (as given).</summary>
    public static bool TryNormalizeSan(string? text, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? san)
    {
        san = null;
        var value = text?.Trim() ?? "";
        var colon = value.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0 || colon == value.Length - 1 || value.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            return false;
        }

        var rest = value[(colon + 1)..];
        switch (value[..colon].ToLowerInvariant())
        {
            case "dns":
                san = "dns:" + rest.ToLowerInvariant();
                return true;
            case "email" when rest.Contains('@', StringComparison.Ordinal):
                san = "email:" + rest;
                return true;
            case "uri" when Uri.TryCreate(rest, UriKind.Absolute, out _):
                san = "uri:" + rest;
                return true;
            default:
                return false;
        }
    }

    /// <summary>Parses the bundle: PEM certificates only (a private key is refused, never quoted), at least one, none
    /// expired. Returns the certificates re-encoded as PEM (what the store keeps).</summary>
    private static string? ValidateCaBundle(string? pem, string caKey, string path, List<ValidationError> errors, DateTimeOffset now)
    {
        var keyPath = $"{path}:{caKey}";
        if (pem is null)
        {
            if (caKey == "ca")
            {
                errors.Add(new(path + ":ca", "required: the client CA bundle as PEM (ca) or a file holding it (caFile)"));
            }

            return null;
        }

        if (pem.Contains("PRIVATE KEY-----", StringComparison.Ordinal))
        {
            errors.Add(new(keyPath, "holds a private key; give only the CA certificates (the edge needs no CA key)"));
            return null;
        }

        var certificates = new X509Certificate2Collection();
        try
        {
            certificates.ImportFromPem(pem);
        }
        catch (CryptographicException ex)
        {
            errors.Add(new(keyPath, $"is not a PEM certificate bundle: {ex.Message}"));
            return null;
        }

        try
        {
            if (certificates.Count == 0)
            {
                errors.Add(new(keyPath, "holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
                return null;
            }

            var result = new System.Text.StringBuilder();
            foreach (var certificate in certificates)
            {
                if (certificate.NotAfter.ToUniversalTime() < now.UtcDateTime)
                {
                    errors.Add(new(keyPath, $"the CA certificate '{certificate.Subject}' expired on {certificate.NotAfter.ToUniversalTime():yyyy-MM-dd HH:mm}Z"));
                    continue;
                }

                result.Append(certificate.ExportCertificatePem()).Append('\n');
            }

            return result.Length == 0 ? null : result.ToString();
        }
        finally
        {
            foreach (var certificate in certificates)
            {
                certificate.Dispose();
            }
        }
    }

    private static bool Flag(string? text, string path, List<ValidationError> errors)
    {
        switch (text?.Trim().ToUpperInvariant())
        {
            case null or "FALSE":
                return false;
            case "TRUE":
                return true;
            default:
                errors.Add(new(path, $"'{text}' is not true or false"));
                return false;
        }
    }
}
