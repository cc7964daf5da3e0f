using System.CommandLine;
using Gatehouse.Admin;

namespace Gatehouse.Cli;

/// <summary>The <c>sites add</c> options for backend TLS (re-encrypt) and health checks, and how <c>sites list</c>
/// shows them. Files are read here and sent as PEM text; the server seals the client key.</summary>
internal sealed class BackendOptions
{
    private readonly Option<FileInfo?> _ca = new("--backend-ca") { Description = "Reencrypt: PEM file of the CA(s) that backend certificates must chain to (default: the system trust)." };
    private readonly Option<string?> _serverName = new("--backend-server-name") { Description = "Reencrypt: the name backend certificates must be valid for (default: each backend URL's host)." };
    private readonly Option<string?> _sni = new("--backend-sni") { Description = "Reencrypt: the SNI name sent to backends (default: the server name)." };
    private readonly Option<FileInfo?> _clientCert = new("--backend-client-cert") { Description = "Reencrypt: PEM file of the client certificate (and chain) presented to backends." };
    private readonly Option<FileInfo?> _clientKey = new("--backend-client-key") { Description = "Reencrypt: PEM file of its unencrypted private key (sealed by the server, never shown again)." };
    private readonly Option<string?> _healthPath = new("--health-path") { Description = "Active health checks: path probed with GET on every backend (e.g. /healthz)." };
    private readonly Option<string?> _healthInterval = new("--health-interval") { Description = "Active health checks: time between probes (default 10s)." };
    private readonly Option<string?> _healthTimeout = new("--health-timeout") { Description = "Active health checks: probe timeout (default 5s)." };
    private readonly Option<int?> _unhealthyAfter = new("--unhealthy-after") { Description = "Failed probes in a row that take a backend out (default 2)." };
    private readonly Option<int?> _healthyAfter = new("--healthy-after") { Description = "Passed probes in a row that bring it back (default 1)." };
    private readonly Option<bool?> _passive = new("--passive-health") { Description = "Passive failure detection: true (default) or false." };

    public static BackendOptions AddTo(Command command)
    {
        var options = new BackendOptions();
        foreach (var option in new Option[] { options._ca, options._serverName, options._sni, options._clientCert, options._clientKey, options._healthPath, options._healthInterval, options._healthTimeout, options._unhealthyAfter, options._healthyAfter, options._passive })
        {
            command.Options.Add(option);
        }

        return options;
    }

    public BackendTlsRequest? Tls(ParseResult parseResult)
    {
        var ca = parseResult.GetValue(_ca);
        var cert = parseResult.GetValue(_clientCert);
        var key = parseResult.GetValue(_clientKey);
        var serverName = parseResult.GetValue(_serverName);
        var sni = parseResult.GetValue(_sni);
        return ca is null && cert is null && key is null && serverName is null && sni is null
            ? null
            : new BackendTlsRequest(Read(ca, "--backend-ca"), serverName, sni, Read(cert, "--backend-client-cert"), Read(key, "--backend-client-key"));
    }

    public HealthCheckRequest? Health(ParseResult parseResult)
    {
        var request = new HealthCheckRequest(parseResult.GetValue(_healthPath), parseResult.GetValue(_healthInterval), parseResult.GetValue(_healthTimeout), parseResult.GetValue(_unhealthyAfter), parseResult.GetValue(_healthyAfter), parseResult.GetValue(_passive));
        return request == new HealthCheckRequest() ? null : request;
    }

    /// <summary>The backend TLS and health lines under a site's mode in <c>sites list</c> (never key material).</summary>
    public static string Describe(SiteView site)
    {
        var lines = new List<string>();
        if (site.BackendTls is { } tls)
        {
            lines.Add("CA: " + (tls.Ca is null ? "system trust" : string.Join(", ", tls.Ca)));
            if (tls.ServerName is not null || tls.Sni is not null)
            {
                lines.Add($"verify {tls.ServerName ?? "URL host"}, SNI {tls.Sni ?? tls.ServerName ?? "URL host"}");
            }

            if (tls.ClientCertificate is { } client)
            {
                lines.Add($"client cert {client.Subject} (serial {client.Serial}, until {client.NotAfter:yyyy-MM-dd})");
            }
        }

        if (site.HealthCheck is { } health)
        {
            lines.Add((health.Path is null ? "no active checks" : $"health GET {health.Path} every {health.Interval} (out after {health.UnhealthyAfter}, in after {health.HealthyAfter})")
                + (health.Passive ? "" : ", passive off"));
        }

        return lines.Count == 0 ? "" : "\n" + string.Join("\n", lines);
    }

    private static string? Read(FileInfo? file, string option)
    {
        if (file is null)
        {
            return null;
        }

        try
        {
            return File.ReadAllText(file.FullName);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"{option}: cannot read '{file.FullName}': {ex.Message}");
        }
    }
}
