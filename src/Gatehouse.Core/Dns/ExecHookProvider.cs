using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gatehouse.Dns;

/// <summary>Publishes DNS-01 records by running a command (see <see cref="ExecHookOptions"/>).</summary>
public sealed class ExecHookProvider : IDnsChallengeProvider
{
    /// <summary>How much of the command's stderr an error quotes: its last 2 KiB.</summary>
    internal const int StderrTail = 2048;

    private readonly ExecHookOptions _options;
    private readonly TxtRecordWatcher _watcher;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;

    public ExecHookProvider(ExecHookOptions options, ILogger<ExecHookProvider>? logger = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.Command, nameof(options.Command));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.Timeout, TimeSpan.Zero, nameof(options.Timeout));
        _options = options;
        _timeProvider = timeProvider ?? TimeProvider.System;
        _logger = logger ?? NullLogger<ExecHookProvider>.Instance;
        _watcher = new TxtRecordWatcher(options.Visibility, _timeProvider, _logger);
    }

    public Task PresentAsync(string recordName, string value, CancellationToken cancellationToken) =>
        RunAsync("present", recordName, value, cancellationToken);

    public Task CleanupAsync(string recordName, string value, CancellationToken cancellationToken) =>
        RunAsync("cleanup", recordName, value, cancellationToken);

    public Task WaitUntilVisibleAsync(string recordName, string value, TimeSpan timeout, CancellationToken cancellationToken) =>
        _watcher.WaitUntilVisibleAsync(recordName, value, timeout, cancellationToken);

    private async Task RunAsync(string action, string recordName, string value, CancellationToken cancellationToken)
    {
        var name = DnsName.Normalize(recordName, nameof(recordName));
        ArgumentNullException.ThrowIfNull(value);
        var start = new ProcessStartInfo(_options.Command)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = _options.WorkingDirectory ?? "",
        };
        foreach (var argument in _options.Arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.ArgumentList.Add(action);
        start.ArgumentList.Add(name);
        start.ArgumentList.Add(value);
        foreach (var (key, setting) in _options.Environment)
        {
            start.Environment[key] = setting;
        }

        start.Environment["GATEHOUSE_DNS_ACTION"] = action;
        start.Environment["GATEHOUSE_DNS_NAME"] = name;
        start.Environment["GATEHOUSE_DNS_VALUE"] = value;

        var what = $"DNS hook {_options.Command} {action} {name}";
        var started = _timeProvider.GetTimestamp();
        using var process = new Process { StartInfo = start };
        try
        {
            process.Start();
        }
        catch (Win32Exception e)
        {
            throw new DnsException($"{what} could not start: {e.Message}", innerException: e);
        }

        process.StandardInput.Close();
        // Both pipes are drained while the command runs, or a chatty command would block on a full pipe.
        var stdout = TailAsync(process.StandardOutput);
        var stderr = TailAsync(process.StandardError);
        using var timeout = new CancellationTokenSource(_options.Timeout, _timeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            await process.WaitForExitAsync(linked.Token);
        }
        catch (OperationCanceledException)
        {
            Kill(process);
            if (cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            throw new DnsException($"{what} did not finish within {_options.Timeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s and was killed{Quote(await DrainedAsync(stderr))}",
                transient: true);
        }

        // A child the command left running may hold the pipes open: the output is not waited for without end.
        var errors = await DrainedAsync(stderr);
        await DrainedAsync(stdout);
        if (process.ExitCode != 0)
        {
            throw new DnsException($"{what} failed with exit status {process.ExitCode}{Quote(errors)}");
        }

        DnsLog.HookFinished(_logger, _options.Command, action, name, _timeProvider.GetElapsedTime(started));
    }

    private static void Kill(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // It ended on its own meanwhile.
        }
    }

    private static async Task<string> DrainedAsync(Task<string> output)
    {
        try
        {
            return await output.WaitAsync(TimeSpan.FromSeconds(2));
        }
        catch (TimeoutException)
        {
            return "";
        }
    }

    private static string Quote(string stderr)
    {
        var text = stderr.Trim();
        return text.Length == 0 ? " (nothing on stderr)" : $"; stderr: {text}";
    }

    /// <summary>Reads a stream to its end, keeping its last <see cref="StderrTail"/> characters.</summary>
    private static async Task<string> TailAsync(StreamReader reader)
    {
        var tail = new StringBuilder();
        var buffer = new char[4096];
        var truncated = false;
        int read;
        while ((read = await reader.ReadAsync(buffer)) > 0)
        {
            tail.Append(buffer, 0, read);
            if (tail.Length > 2 * StderrTail)
            {
                tail.Remove(0, tail.Length - StderrTail);
                truncated = true;
            }
        }

        if (tail.Length > StderrTail)
        {
            tail.Remove(0, tail.Length - StderrTail);
            truncated = true;
        }

        return truncated ? "…" + tail : tail.ToString();
    }
}
