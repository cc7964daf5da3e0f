using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Gatehouse.Admin;
using Gatehouse.Certificates;
using Spectre.Console;

namespace Gatehouse.Cli;

/// <summary><c>gatehouse issuers list|account|rollover|deactivate</c>: the ACME accounts of the configured issuers.</summary>
internal static class IssuersCommand
{
    public static Command Create()
    {
        var issuers = new Command("issuers", "Inspect and manage the ACME accounts of the configured issuers.");
        var connection = new AdminConnectionOptions();

        var list = new Command("list", "List the ACME issuers with their account URL and key dates, as stored (the CA is not asked).");
        connection.AddTo(list);
        list.SetAction((parseResult, ct) => SitesCommand.Run(async () =>
        {
            using var client = connection.CreateClient(parseResult);
            var body = await client.SendAsync(HttpMethod.Get, "/v1/issuers", null, ct);
            if (parseResult.GetValue(connection.Json))
            {
                Console.WriteLine(body);
                return;
            }

            var table = new Table().AddColumns("Issuer", "Directory", "Account", "Key created", "Key rolled over");
            foreach (var account in JsonSerializer.Deserialize(body, AdminJson.Default.ListAcmeAccountInfo)!)
            {
                table.AddRow(
                    Markup.Escape(account.Issuer),
                    Markup.Escape(account.Directory.AbsoluteUri),
                    Markup.Escape(account.Url?.AbsoluteUri ?? "not registered yet"),
                    Time(account.Created),
                    Time(account.KeyChanged));
            }

            AnsiConsole.Write(table);
        }));
        issuers.Subcommands.Add(list);
        issuers.Subcommands.Add(AccountAction(connection, "account", HttpMethod.Get, "account",
            "Show the issuer's account as the CA has it now: status, contact, key algorithm.", confirm: false));
        issuers.Subcommands.Add(AccountAction(connection, "rollover", HttpMethod.Post, "account/rollover",
            "Roll the account key over to a fresh key (RFC 8555 §7.3.5); the CA refuses the old key afterwards.", confirm: false));
        issuers.Subcommands.Add(AccountAction(connection, "deactivate", HttpMethod.Post, "account/deactivate",
            "Deactivate the account at the CA (RFC 8555 §7.3.6), e.g. after its key leaked; the next order registers a new account. Cannot be undone.", confirm: true));
        return issuers;
    }

    private static Command AccountAction(AdminConnectionOptions connection, string name, HttpMethod method, string path, string description, bool confirm)
    {
        var issuer = new Argument<string>("ISSUER") { Description = "The ACME issuer's name in the config." };
        var yes = new Option<bool>("--yes") { Description = "Confirm an action that cannot be undone." };
        var command = new Command(name, description) { issuer };
        connection.AddTo(command);
        if (confirm)
        {
            command.Options.Add(yes);
        }

        command.SetAction((parseResult, ct) => SitesCommand.Run(async () =>
        {
            var issuerName = parseResult.GetValue(issuer)!;
            if (confirm && !parseResult.GetValue(yes))
            {
                throw new CliException($"{name} cannot be undone: run again with --yes to {name} the account of issuer {issuerName}.");
            }

            using var client = connection.CreateClient(parseResult);
            var body = await client.SendAsync(method, $"/v1/issuers/{Uri.EscapeDataString(issuerName)}/{path}", null, ct);
            if (parseResult.GetValue(connection.Json))
            {
                Console.WriteLine(body);
                return;
            }

            Print(JsonSerializer.Deserialize(body, AdminJson.Default.AcmeAccountInfo)!);
        }));
        return command;
    }

    private static void Print(AcmeAccountInfo account)
    {
        var grid = new Grid().AddColumn().AddColumn();
        grid.AddRow("Issuer", Markup.Escape(account.Issuer));
        grid.AddRow("Directory", Markup.Escape(account.Directory.AbsoluteUri));
        grid.AddRow("Account", Markup.Escape(account.Url?.AbsoluteUri ?? "not registered yet"));
        grid.AddRow("Status", Markup.Escape(account.Status ?? "-"));
        grid.AddRow("Contact", Markup.Escape(account.Contact.Count == 0 ? "-" : string.Join(", ", account.Contact)));
        grid.AddRow("Key algorithm", Markup.Escape(account.KeyAlgorithm ?? "-"));
        grid.AddRow("Key created", Time(account.Created));
        grid.AddRow("Key rolled over", Time(account.KeyChanged));
        AnsiConsole.Write(grid);
    }

    private static string Time(DateTimeOffset? value) => value?.UtcDateTime.ToString("yyyy-MM-dd HH:mm'Z'", CultureInfo.InvariantCulture) ?? "-";
}
