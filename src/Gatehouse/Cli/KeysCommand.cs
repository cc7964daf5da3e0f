using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Gatehouse.Hosting;
using Gatehouse.Keys;
using Gatehouse.Storage;
using Spectre.Console;

namespace Gatehouse.Cli;

/// <summary>
/// <c>gatehouse keys list|init|rotate|rewrap|retire</c>: master key management. These commands open the store and the
/// key providers themselves, with the same configuration as <c>serve</c> (they need the keys, which the admin API
/// never hands out); a running server picks their changes up from the store.
/// </summary>
internal static class KeysCommand
{
    public static Command Create()
    {
        var keys = new Command("keys", "Manage master keys: list versions, rotate, rewrap records onto the active version, retire old versions.");
        keys.Subcommands.Add(List());
        keys.Subcommands.Add(Init());
        keys.Subcommands.Add(Rotate());
        keys.Subcommands.Add(Rewrap());
        keys.Subcommands.Add(Retire());
        return keys;
    }

    private static Command List()
    {
        var json = new Option<bool>("--json") { Description = "Print JSON for scripts instead of a table." };
        var command = Define("list", "List master key versions: state, provider, creation time and how many records each protects.", json);
        command.SetAction((parse, ct) => RunWithRing(parse, async (context, ring) =>
        {
            var usage = await KeyRingStore.CountAsync(context.Store, SealedRecords.All, ct);
            var record = ring.Record;
            if (parse.GetValue(json))
            {
                var view = new KeyRingView(record.Id, [.. record.Versions.Select(v => new KeyVersionView(
                    v.Version, StateName(v.State), v.Provider, v.Kind, v.Created, v.RetiredAt, usage.ByVersion.GetValueOrDefault((record.Id, v.Version))))], usage.Records, usage.Unreadable);
                Console.WriteLine(JsonSerializer.Serialize(view, CliJson.Default.KeyRingView));
                return;
            }

            var table = new Table().AddColumns("Version", "State", "Provider", "Kind", "Created", "Records");
            foreach (var v in record.Versions)
            {
                table.AddRow(
                    v.Version.ToString(CultureInfo.InvariantCulture),
                    v.State switch { KeyVersionState.Active => "[green]active[/]", KeyVersionState.DecryptOnly => "decrypt-only", _ => "[grey]retired[/]" },
                    Markup.Escape(v.Provider),
                    v.Kind,
                    v.Created.UtcDateTime.ToString("yyyy-MM-dd HH:mm'Z'", CultureInfo.InvariantCulture),
                    usage.ByVersion.GetValueOrDefault((record.Id, v.Version)).ToString(CultureInfo.InvariantCulture));
            }

            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine($"Key ring [bold]{Markup.Escape(record.Id)}[/]: {usage.Records} records hold sealed secrets{(usage.Unreadable > 0 ? $", [red]{usage.Unreadable} unreadable[/]" : "")}.");
        }, ct));
        return command;
    }

    private static Command Init()
    {
        var provider = new Option<string?>("--provider") { Description = "The provider that holds version 1 (default: keys.provider). A PKCS#11 key with the configured label is used when it exists, else created." };
        var command = Define("init", "Create the key ring (version 1) explicitly; `serve` does this on first start for software and passphrase providers.", provider);
        command.SetAction((parse, ct) => Run(parse, async context =>
        {
            var name = parse.GetValue(provider) ?? context.Keys.Provider;
            var chosen = context.Providers.GetValueOrDefault(name) ?? throw new KeyRingException($"No key provider named '{name}' is configured.");
            var record = await KeyRingStore.InitializeAsync(context.Store, chosen, TimeProvider.System, ct);
            Console.WriteLine($"Key ring {record.Id} created: version 1 on provider '{name}' ({chosen.Kind}) is active.");
        }, ct));
        return command;
    }

    private static Command Rotate()
    {
        var provider = new Option<string?>("--provider") { Description = "The provider for the new version (default: keys.provider). Rotating to another provider, then rewrapping, moves the ring there." };
        var command = Define("rotate", "Make a new master key version active; older versions keep decrypting until retired.", provider);
        command.SetAction((parse, ct) => RunWithRing(parse, async (context, ring) =>
        {
            var name = parse.GetValue(provider) ?? context.Keys.Provider;
            var added = await KeyRingStore.RotateAsync(context.Store, ring, name, TimeProvider.System, ct);
            Console.WriteLine($"Version {added.Version} on provider '{added.Provider}' ({added.Kind}) is active; new secrets are sealed with it. Run `gatehouse keys rewrap` to move existing records.");
        }, ct));
        return command;
    }

    private static Command Rewrap()
    {
        var command = Define("rewrap", "Re-wrap every record's data key with the active version (payloads are not re-encrypted). Safe to interrupt and run again.");
        command.SetAction((parse, ct) => RunWithRing(parse, async (context, ring) =>
        {
            var rewrapper = new KeyRewrapper(context.Store, new EnvelopeCipher(ring), SealedRecords.All);
            RewrapResult result;
            if (!Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive)
            {
                result = await AnsiConsole.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                    .StartAsync(async progress =>
                    {
                        var task = progress.AddTask($"Rewrapping onto version {ring.Active.Version}");
                        return await rewrapper.RunAsync(new InlineProgress<RewrapProgress>(p =>
                        {
                            task.MaxValue = Math.Max(1, p.Total);
                            task.Value = p.Done;
                        }), ct);
                    });
            }
            else
            {
                var clock = Stopwatch.StartNew();
                TimeSpan? lastPrint = null;
                result = await rewrapper.RunAsync(new InlineProgress<RewrapProgress>(p =>
                {
                    if (p.Done > 0 && (lastPrint is not { } last || clock.Elapsed - last >= TimeSpan.FromMilliseconds(250) || p.Done == p.Total))
                    {
                        lastPrint = clock.Elapsed;
                        Console.WriteLine($"rewrap: {p.Done}/{p.Total} records, {p.Rewrapped} rewrapped");
                    }
                }), ct);
            }

            Console.WriteLine($"{result.Rewrapped} record(s) rewrapped onto version {ring.Active.Version}, {result.AlreadyCurrent} already there, {result.Failures.Count} failed.");
            foreach (var failure in result.Failures)
            {
                await Console.Error.WriteLineAsync("  " + failure);
            }

            if (result.Failures.Count > 0)
            {
                throw new KeyRingException($"{result.Failures.Count} record(s) could not be rewrapped (listed above); the others are done. Fix or remove them, then run rewrap again.");
            }
        }, ct));
        return command;
    }

    private static Command Retire()
    {
        var version = new Argument<uint>("VERSION") { Description = "The version to retire (see `gatehouse keys list`)." };
        var command = Define("retire", "Retire a version: refused while it is active or any record needs it. PKCS#11 key objects are destroyed.");
        command.Arguments.Add(version);
        command.SetAction((parse, ct) => RunWithRing(parse, async (context, ring) =>
        {
            var retired = await KeyRingStore.RetireAsync(context.Store, ring, parse.GetValue(version), TimeProvider.System, ct);
            Console.WriteLine($"Version {retired.Version} is retired; nothing it wrapped can be opened any more.");
        }, ct));
        return command;
    }

    private static readonly Option<FileInfo?> ConfigOption = new("--config", "-c") { Description = "The YAML config file `serve` uses (for the data directory and key providers)." };
    private static readonly Option<DirectoryInfo?> DataOption = new("--data") { Description = "The data directory (overrides the config's dataDirectory)." };

    private static Command Define(string name, string description, params Option[] options)
    {
        var command = new Command(name, description) { ConfigOption, DataOption };
        foreach (var option in options)
        {
            command.Options.Add(option);
        }

        command.TreatUnmatchedTokensAsErrors = false; // --section:key=value overrides, as for serve
        return command;
    }

    private static Task<int> RunWithRing(ParseResult parse, Func<Context, KeyRing, Task> body, CancellationToken ct) =>
        Run(parse, async context =>
        {
            var ring = await KeyRingStore.OpenOrCreateAsync(context.Store, context.Providers, context.Keys.Provider, TimeProvider.System, ct);
            using (ring)
            {
                await body(context, ring);
            }
        }, ct);

    private static async Task<int> Run(ParseResult parse, Func<Context, Task> body, CancellationToken ct)
    {
        var overrides = new List<string>(parse.UnmatchedTokens);
        if (parse.GetValue(DataOption) is { } data)
        {
            overrides.Add($"--dataDirectory={data.FullName}");
        }

        var errors = new List<string>();
        var options = new GatehouseConfiguration(parse.GetValue(ConfigOption)?.FullName, [.. overrides]).Load(errors);
        if (options is null)
        {
            await Console.Error.WriteLineAsync($"gatehouse: the configuration has {errors.Count} error(s):");
            foreach (var error in errors)
            {
                await Console.Error.WriteLineAsync("  " + error);
            }

            return CommandLine.UsageError;
        }

        Dictionary<string, IMasterKeyProvider> providers;
        try
        {
            providers = KeyProviders.Open(options.EffectiveKeys);
        }
        catch (MasterKeyException ex)
        {
            await Console.Error.WriteLineAsync("gatehouse: " + ex.Message);
            return CommandLine.UsageError;
        }

        try
        {
            await using var store = Stores.Open(options, TimeProvider.System);
            await body(new Context(store, providers, options.EffectiveKeys));
            return 0;
        }
        catch (Exception ex) when (ex is KeyRingException or MasterKeyException or StoreUnavailableException or FormatException)
        {
            await Console.Error.WriteLineAsync("gatehouse: " + ex.Message);
            return CommandLine.Failure;
        }
        finally
        {
            foreach (var provider in providers.Values)
            {
                provider.Dispose();
            }
        }
    }

    private static string StateName(KeyVersionState state) => state switch
    {
        KeyVersionState.Active => "active",
        KeyVersionState.DecryptOnly => "decrypt-only",
        _ => "retired",
    };

    private sealed record Context(IStore Store, Dictionary<string, IMasterKeyProvider> Providers, KeysOptions Keys);

    /// <summary>Reports on the caller's thread (System.Progress posts to the thread pool, which reorders lines).</summary>
    private sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}

internal sealed record KeyRingView(string Id, IReadOnlyList<KeyVersionView> Versions, int Records, int Unreadable);

internal sealed record KeyVersionView(uint Version, string State, string Provider, string Kind, DateTimeOffset Created, DateTimeOffset? RetiredAt, int Records);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[System.Text.Json.Serialization.JsonSerializable(typeof(KeyRingView))]
internal sealed partial class CliJson : System.Text.Json.Serialization.JsonSerializerContext;
