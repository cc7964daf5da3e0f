namespace Gatehouse.Hosting;

/// <summary>
/// Applies edits of the config file while running: re-reads and validates it; a valid change of sites goes to the
/// store (and from there to every part), a bad one is refused with every error logged and the last good config
/// stays in force. Listener and data settings need a restart and say so.
/// </summary>
internal static class ConfigWatcher
{
    private static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(200);

    public static async Task RunAsync(GatehouseConfiguration configuration, GatehouseServer server, ILogger logger, CancellationToken cancellationToken)
    {
        var path = configuration.ConfigPath!;
        var fileName = Path.GetFileName(path);
        var current = server.Options;

        // One directory, the config file's name only: the data directory often lives below the config file, and a
        // recursive watch would wake on every store write.
        var signal = NewSignal();
        using var watcher = new FileSystemWatcher(Path.GetDirectoryName(path)!, fileName)
        {
            IncludeSubdirectories = false,
            NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.Size | NotifyFilters.CreationTime,
        };
        FileSystemEventHandler onChange = (_, _) => Volatile.Read(ref signal).TrySetResult();
        watcher.Changed += onChange;
        watcher.Created += onChange;
        watcher.Renamed += (_, e) => { if (e.Name == fileName) { Volatile.Read(ref signal).TrySetResult(); } };
        watcher.EnableRaisingEvents = true;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Volatile.Read(ref signal).Task.WaitAsync(cancellationToken);
                await Task.Delay(Debounce, cancellationToken); // editors write in several steps

                // Arm again before reading, so an edit made while this one is applied is not missed.
                Volatile.Write(ref signal, NewSignal());
                current = await ApplyAsync(configuration, server, current, logger, cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // Whatever happened, live config keeps working: the last good config stays, the next edit is read.
                HostingLog.ConfigRefused(logger, ex.Message);
            }
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static async Task<GatehouseOptions> ApplyAsync(GatehouseConfiguration configuration, GatehouseServer server, GatehouseOptions current, ILogger logger, CancellationToken cancellationToken)
    {
        {
            var errors = new List<string>();
            var next = configuration.Load(errors);
            if (next is null)
            {
                foreach (var error in errors)
                {
                    HostingLog.ConfigRefused(logger, error);
                }

                return current;
            }

            WarnAboutRestartOnlySettings(current, next, logger);
            await server.SyncConfigSitesAsync(next.Sites, logger, cancellationToken);
            HostingLog.ConfigApplied(logger, next.Sites.Count);
            return next;
        }
    }

    private static void WarnAboutRestartOnlySettings(GatehouseOptions current, GatehouseOptions next, ILogger logger)
    {
        if (current.Edge != next.Edge)
        {
            HostingLog.RestartNeeded(logger, "edge listener settings");
        }

        if (current.Admin != next.Admin)
        {
            HostingLog.RestartNeeded(logger, "admin listener settings");
        }

        if (current.DataDirectory != next.DataDirectory || current.WelcomePort != next.WelcomePort || current.LocalCa != next.LocalCa)
        {
            HostingLog.RestartNeeded(logger, "dataDirectory, welcome or localCa settings");
        }

        if (current.Store != next.Store)
        {
            HostingLog.RestartNeeded(logger, "store settings");
        }
    }
}
