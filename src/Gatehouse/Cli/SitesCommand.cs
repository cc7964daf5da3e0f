using System.CommandLine;
using System.Text.Json;
using Gatehouse.Admin;
using Spectre.Console;

namespace Gatehouse.Cli;

/// <summary><c>gatehouse sites add|list|remove</c></summary>
internal static class SitesCommand
{
    public static Command Create()
    {
        var sites = new Command("sites", "Add, list and remove sites through the admin API.");
        sites.Subcommands.Add(Add());
        sites.Subcommands.Add(List());
        sites.Subcommands.Add(Remove());
        return sites;
    }

    private static Command Add()
    {
        var connection = new AdminConnectionOptions();
        var hosts = new Argument<string[]>("host") { Arity = ArgumentArity.OneOrMore, Description = "Host names (exact or *.wildcard); the first is the site's id." };
        var backends = new Option<string[]>("--backend", "-b") { Required = true, AllowMultipleArgumentsPerToken = true, Description = "Backend: an http(s) URL, or host:port for a passthrough site (repeat for round robin)." };
        var mode = new Option<string?>("--mode") { Description = "offload (default: the edge terminates TLS) or passthrough (the backends terminate it; no certificate at the edge)." };
        var proxyProtocol = new Option<string?>("--proxy-protocol") { Description = "Passthrough sites: none (default), v1 or v2 — the PROXY header that tells backends the client's address." };
        var issuers = new Option<string[]>("--issuer") { AllowMultipleArgumentsPerToken = true, Description = "Issuers to try in order (default: the local CA)." };
        var keyType = new Option<string?>("--key-type") { Description = "Certificate key type: ec256 (default), ec384, rsa2048, rsa3072, rsa4096." };
        var profile = new Option<string?>("--profile") { Description = "ACME certificate profile to ask for (when the CA offers profiles)." };
        var tls = new SiteTlsOptions();
        var command = new Command("add", "Add a site; it is served within seconds (with its own certificate unless it is a passthrough site).") { hosts, backends, mode, proxyProtocol, issuers, keyType, profile };
        tls.AddTo(command);
        var backendOptions = BackendOptions.AddTo(command);
        connection.AddTo(command);
        command.SetAction((parseResult, ct) => Run(async () =>
        {
            using var client = connection.CreateClient(parseResult);
            var request = new AddSiteRequest(parseResult.GetValue(hosts), parseResult.GetValue(backends), parseResult.GetValue(issuers) is { Length: > 0 } i ? i : null, parseResult.GetValue(keyType), parseResult.GetValue(profile), parseResult.GetValue(mode), parseResult.GetValue(proxyProtocol))
            {
                ClientAuth = tls.ClientAuth(parseResult),
                Hsts = tls.Hsts(parseResult),
                BackendTls = backendOptions.Tls(parseResult),
                HealthCheck = backendOptions.Health(parseResult),
            };
            var body = await client.SendAsync(HttpMethod.Post, "/v1/sites", JsonSerializer.Serialize(request, AdminJson.Default.AddSiteRequest), ct);
            if (parseResult.GetValue(connection.Json))
            {
                Console.WriteLine(body);
            }
            else
            {
                var site = JsonSerializer.Deserialize(body, AdminJson.Default.SiteView)!;
                AnsiConsole.MarkupLineInterpolated($"Added site [bold]{site.Id}[/] ({site.Mode}): {string.Join(", ", site.Hosts)} → {string.Join(", ", site.Backends)}");
            }
        }));
        return command;
    }

    private static Command List()
    {
        var connection = new AdminConnectionOptions();
        var command = new Command("list", "List sites.");
        connection.AddTo(command);
        command.SetAction((parseResult, ct) => Run(async () =>
        {
            using var client = connection.CreateClient(parseResult);
            var body = await client.SendAsync(HttpMethod.Get, "/v1/sites", null, ct);
            if (parseResult.GetValue(connection.Json))
            {
                Console.WriteLine(body);
                return;
            }

            var table = new Table().AddColumns("Site", "Mode", "Hosts", "Backends", "Issuers", "Client certs", "HSTS", "Source");
            foreach (var site in JsonSerializer.Deserialize(body, AdminJson.Default.ListSiteView)!)
            {
                var siteMode = (site.ProxyProtocol is "none" ? site.Mode : $"{site.Mode} (PROXY {site.ProxyProtocol})") + BackendOptions.Describe(site);
                table.AddRow(Markup.Escape(site.Id), Markup.Escape(siteMode), Markup.Escape(string.Join("\n", site.Hosts)), Markup.Escape(string.Join("\n", site.Backends)), Markup.Escape(site.Issuers.Count > 0 ? string.Join(", ", site.Issuers) : "-"), Markup.Escape(SiteTlsViews.Describe(site.ClientAuth)), Markup.Escape(SiteTlsViews.Describe(site.Hsts)), site.Source);
            }

            AnsiConsole.Write(table);
        }));
        return command;
    }

    private static Command Remove()
    {
        var connection = new AdminConnectionOptions();
        var host = new Argument<string>("host") { Description = "Any host name of the site to remove." };
        var command = new Command("remove", "Remove the site that has this host; it stops being served within seconds.") { host };
        connection.AddTo(command);
        command.SetAction((parseResult, ct) => Run(async () =>
        {
            using var client = connection.CreateClient(parseResult);
            await client.SendAsync(HttpMethod.Delete, "/v1/sites/" + Uri.EscapeDataString(parseResult.GetValue(host)!), null, ct);
            if (!parseResult.GetValue(connection.Json))
            {
                AnsiConsole.MarkupLineInterpolated($"Removed the site of [bold]{parseResult.GetValue(host)}[/].");
            }
        }));
        return command;
    }

    /// <summary>Runs a command body; a <see cref="CliException"/> becomes one line on stderr and exit code 1.</summary>
    internal static async Task<int> Run(Func<Task> body)
    {
        try
        {
            await body();
            return 0;
        }
        catch (CliException ex)
        {
            await Console.Error.WriteLineAsync("gatehouse: " + ex.Message);
            return CommandLine.Failure;
        }
    }
}
