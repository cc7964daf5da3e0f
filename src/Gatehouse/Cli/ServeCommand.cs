using System.CommandLine;
using Gatehouse.Hosting;
using Gatehouse.Keys;
using Gatehouse.Storage;

namespace Gatehouse.Cli;

/// <summary><c>gatehouse serve [--config FILE] [--key=value ...]</c></summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var config = new Option<FileInfo?>("--config", "-c") { Description = "The YAML config file (watched: site changes apply live)." };
        var command = new Command("serve", "Run the edge, the certificate manager and the admin API.") { config };
        command.TreatUnmatchedTokensAsErrors = false; // --section:key=value overrides, the ASP.NET way
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var configPath = parseResult.GetValue(config)?.FullName;
            var configuration = new GatehouseConfiguration(configPath, [.. parseResult.UnmatchedTokens]);
            var errors = new List<string>();
            var options = configuration.Load(errors);
            if (options is null)
            {
                await Console.Error.WriteLineAsync($"gatehouse: the configuration has {errors.Count} error(s); nothing was started:");
                foreach (var error in errors)
                {
                    await Console.Error.WriteLineAsync("  " + error);
                }

                return CommandLine.UsageError;
            }

            if (options.Edge.SocketCompletions == EdgeSocketCompletions.Inline)
            {
                // Before anything in this process opens a socket: the runtime reads its switch once.
                Gatehouse.Edge.SocketCompletions.RequestInline();
            }

            GatehouseServer server;
            try
            {
                server = await GatehouseServer.StartAsync(options, configuration, cancellationToken: cancellationToken);
            }
            catch (Exception ex) when (ex is MasterKeyException or StoreUnavailableException or IOException or TimeoutException or InvalidOperationException or System.Security.Cryptography.CryptographicException)
            {
                await Console.Error.WriteLineAsync($"gatehouse: cannot start: {ex.Message}");
                return CommandLine.UsageError;
            }

            await using (server)
            {
                PrintWelcome(options);
                try
                {
                    await server.Stopped.WaitAsync(cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    // Ctrl-C / SIGTERM: stop cleanly.
                }
            }

            return 0;
        });
        return command;
    }

    /// <summary>How this executable was started, so the hints can be pasted as they are.</summary>
    private static string Self()
    {
        var process = Environment.ProcessPath ?? "gatehouse";
        if (Path.GetFileNameWithoutExtension(process) == "dotnet")
        {
            return "dotnet " + Path.GetRelativePath(Directory.GetCurrentDirectory(), Path.Combine(AppContext.BaseDirectory, "gatehouse.dll"));
        }

        return Path.GetRelativePath(Directory.GetCurrentDirectory(), process);
    }

    private static void PrintWelcome(GatehouseOptions options)
    {
        var host = options.Sites.Count > 0 ? options.Sites[0].Site.Hosts[0].Replace("*.", "www.", StringComparison.Ordinal) : "<your-site>";
        var port = options.Edge.HttpsPort == 443 ? "" : $":{options.Edge.HttpsPort}";
        var root = Path.GetRelativePath(Directory.GetCurrentDirectory(), options.LocalCaRootPath);
        Console.Error.WriteLine($"""

            Gatehouse is running.
              Try:        curl --cacert {root} https://{host}{port}/
              Trust this root certificate for the local CA: {options.LocalCaRootPath}
              Admin API:  https://{options.Admin.Address}:{options.Admin.Port}/ (token in {options.AdminTokenPath})
              Add a site: {Self()} sites add app.localhost --backend http://127.0.0.1:3000 --data {Path.GetRelativePath(Directory.GetCurrentDirectory(), options.DataDirectory)}
            Press Ctrl-C to stop.

            """);
    }
}
