using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Primitives;

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
        using var files = new PhysicalFileProvider(Path.GetDirectoryName(path)!) { UsePollingFileWatcher = false };
        var fileName = Path.GetFileName(path);
        var current = server.Options;
        while (!cancellationToken.IsCancellationRequested)
        {
            var changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            using (ChangeToken.OnChange(() => files.Watch(fileName), () => changed.TrySetResult()))
            {
                try
                {
                    await changed.Task.WaitAsync(cancellationToken);
                    await Task.Delay(Debounce, cancellationToken); // editors write in several steps
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }

            var errors = new List<string>();
            var next = configuration.Load(errors);
            if (next is null)
            {
                foreach (var error in errors)
                {
                    HostingLog.ConfigRefused(logger, error);
                }

                continue;
            }

            WarnAboutRestartOnlySettings(current, next, logger);
            try
            {
                await server.SyncConfigSitesAsync(next.Sites, logger, cancellationToken);
                current = next;
                HostingLog.ConfigApplied(logger, next.Sites.Count);
            }
            catch (Exception ex) when (ex is Storage.StoreUnavailableException)
            {
                HostingLog.ConfigRefused(logger, ex.Message);
            }
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
    }
}
