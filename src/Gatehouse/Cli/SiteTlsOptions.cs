using System.CommandLine;
using Gatehouse.Admin;

namespace Gatehouse.Cli;

/// <summary>The mutual TLS and HSTS options of <c>gatehouse sites add</c>.</summary>
internal sealed class SiteTlsOptions
{
    private readonly Option<string?> _clientAuth = new("--client-auth") { Description = "Client certificates: none (default), optional (asked for; 403 on --client-cert-path without one) or required (the handshake fails without a valid one)." };
    private readonly Option<FileInfo?> _clientCa = new("--client-ca") { Description = "PEM file with the CA certificates client certificates must chain to (read here, sent to the server)." };
    private readonly Option<string[]> _allowedSubjects = new("--client-subject") { AllowMultipleArgumentsPerToken = true, Description = "Accept only client certificates with this subject DN (repeatable), e.g. \"CN=client1, O=Example\"." };
    private readonly Option<string[]> _allowedSans = new("--client-san") { AllowMultipleArgumentsPerToken = true, Description = "Accept only client certificates with this SAN (repeatable): dns:NAME, email:ADDRESS or uri:URI." };
    private readonly Option<string[]> _requiredPaths = new("--client-cert-path") { AllowMultipleArgumentsPerToken = true, Description = "With --client-auth optional: path prefixes that answer 403 without a client certificate (repeatable)." };
    private readonly Option<string?> _hsts = new("--hsts") { Description = "HSTS: off, on, or a max-age such as 365d (default: on for ACME issuers, off for the local CA)." };
    private readonly Option<bool> _hstsSubdomains = new("--hsts-include-subdomains") { Description = "Add includeSubDomains to HSTS." };
    private readonly Option<bool> _hstsPreload = new("--hsts-preload") { Description = "Add preload to HSTS (needs --hsts-include-subdomains and a max-age of at least 365d)." };

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { _clientAuth, _clientCa, _allowedSubjects, _allowedSans, _requiredPaths, _hsts, _hstsSubdomains, _hstsPreload })
        {
            command.Options.Add(option);
        }
    }

    /// <summary>The <c>clientAuth</c> of the request, or null when no client-auth option was given.</summary>
    public ClientAuthRequest? ClientAuth(ParseResult parseResult)
    {
        var mode = parseResult.GetValue(_clientAuth);
        var caFile = parseResult.GetValue(_clientCa);
        var subjects = parseResult.GetValue(_allowedSubjects) ?? [];
        var sans = parseResult.GetValue(_allowedSans) ?? [];
        var paths = parseResult.GetValue(_requiredPaths) ?? [];
        if (mode is null && caFile is null && subjects.Length == 0 && sans.Length == 0 && paths.Length == 0)
        {
            return null;
        }

        string? ca = null;
        if (caFile is not null)
        {
            try
            {
                ca = File.ReadAllText(caFile.FullName);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new CliException($"cannot read --client-ca '{caFile.FullName}': {ex.Message}");
            }
        }

        return new ClientAuthRequest(mode, ca, subjects, sans, paths);
    }

    /// <summary>The <c>hsts</c> of the request, or null for the default.</summary>
    public HstsRequest? Hsts(ParseResult parseResult)
    {
        var hsts = parseResult.GetValue(_hsts);
        bool? subdomains = parseResult.GetValue(_hstsSubdomains) ? true : null;
        bool? preload = parseResult.GetValue(_hstsPreload) ? true : null;
        return hsts?.Trim().ToLowerInvariant() switch
        {
            null when subdomains is null && preload is null => null,
            "off" => new HstsRequest(Enabled: false),
            null or "on" => new HstsRequest(Enabled: true, IncludeSubdomains: subdomains, Preload: preload),
            _ => new HstsRequest(Enabled: true, MaxAge: hsts, IncludeSubdomains: subdomains, Preload: preload),
        };
    }
}
