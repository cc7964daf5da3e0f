using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Gatehouse.Admin;
using Spectre.Console;

namespace Gatehouse.Cli;

/// <summary><c>gatehouse certs list</c></summary>
internal static class CertsCommand
{
    public static Command Create()
    {
        var certs = new Command("certs", "Inspect certificates.");
        var connection = new AdminConnectionOptions();
        var list = new Command("list", "List certificates: names, issuer, serial, validity, next renewal, status, last error.");
        connection.AddTo(list);
        list.SetAction((parseResult, ct) => SitesCommand.Run(async () =>
        {
            using var client = connection.CreateClient(parseResult);
            var body = await client.SendAsync(HttpMethod.Get, "/v1/certificates", null, ct);
            if (parseResult.GetValue(connection.Json))
            {
                Console.WriteLine(body);
                return;
            }

            var table = new Table().AddColumns("Certificate", "Names", "Issuer", "Serial", "Not before", "Not after", "Next renewal", "Status", "Last error");
            foreach (var c in JsonSerializer.Deserialize(body, AdminJson.Default.ListCertificateView)!)
            {
                table.AddRow(
                    Markup.Escape(c.Id),
                    Markup.Escape(string.Join("\n", c.Names)),
                    Markup.Escape(c.Issuer ?? "-"),
                    Markup.Escape(c.Serial ?? "-"),
                    Time(c.NotBefore),
                    Time(c.NotAfter),
                    Time(c.NextRenewal),
                    c.Status == "valid" ? "[green]valid[/]" : Markup.Escape(c.Status),
                    Markup.Escape(c.LastError ?? ""));
            }

            AnsiConsole.Write(table);
        }));
        certs.Subcommands.Add(list);
        certs.Subcommands.Add(Action(connection, "renew", "Renew the certificate that covers HOST now, with a fresh key (also after a failure that is not retried).", null));
        var reason = new Option<string?>("--reason") { Description = "RFC 5280 reason: unspecified, keyCompromise, superseded, cessationOfOperation, affiliationChanged, ..." };
        certs.Subcommands.Add(Action(connection, "revoke", "Revoke the certificate that covers HOST at its ACME CA, then issue a new one.", reason));
        return certs;
    }

    private static Command Action(AdminConnectionOptions connection, string name, string description, Option<string?>? reason)
    {
        var host = new Argument<string>("HOST") { Description = "A host name the certificate covers." };
        var command = new Command(name, description) { host };
        connection.AddTo(command);
        if (reason is not null)
        {
            command.Options.Add(reason);
        }

        command.SetAction((parseResult, ct) => SitesCommand.Run(async () =>
        {
            using var client = connection.CreateClient(parseResult);
            var query = reason is not null && parseResult.GetValue(reason) is { } why ? "?reason=" + Uri.EscapeDataString(why) : "";
            var body = await client.SendAsync(HttpMethod.Post, $"/v1/certificates/{Uri.EscapeDataString(parseResult.GetValue(host)!)}/{name}{query}", null, ct);
            if (parseResult.GetValue(connection.Json))
            {
                Console.WriteLine(body);
                return;
            }

            var view = JsonSerializer.Deserialize(body, AdminJson.Default.ActionView)!;
            Console.WriteLine($"{view.Certificate}: {view.Result}");
        }));
        return command;
    }

    private static string Time(DateTimeOffset? value) => value?.UtcDateTime.ToString("yyyy-MM-dd HH:mm'Z'", CultureInfo.InvariantCulture) ?? "-";
}
