// Helpers shared by the bench programs (compiled into each, see their .csproj): /proc readings, stopping a process and
// "--name value" arguments.
using System.Diagnostics;
using System.Globalization;

/// <summary>CPU time and memory of a process from /proc.</summary>
internal static class ProcStats
{
    private static readonly double TicksPerSecond = ClockTicks();

    public static double CpuSeconds(int pid) => TryReadStat(pid, out _, out _, out var ticks) ? ticks / TicksPerSecond : 0;

    /// <summary>comm (field 2), ppid (field 4) and utime + stime (fields 14 + 15) of /proc/PID/stat, all threads.</summary>
    public static bool TryReadStat(int pid, out string comm, out int parent, out long cpuTicks)
    {
        comm = "";
        parent = 0;
        cpuTicks = 0;
        string text;
        try
        {
            text = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }

        var open = text.IndexOf('(', StringComparison.Ordinal);
        var close = text.LastIndexOf(')');
        if (open < 0 || close < open)
        {
            return false;
        }

        comm = text[(open + 1)..close];
        var fields = text[(close + 2)..].Split(' '); // fields[0] is field 3 (state)
        parent = int.Parse(fields[1], CultureInfo.InvariantCulture);
        cpuTicks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return true;
    }

    /// <summary>The processes whose parent is <paramref name="parent"/> and whose comm (the executable's name cut at 15
    /// characters) is one of <paramref name="names"/>.</summary>
    public static int[] Children(int parent, params string[] names)
    {
        var found = new List<int>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(directory), out var pid) && TryReadStat(pid, out var comm, out var ppid, out _) && ppid == parent && names.Contains(comm))
            {
                found.Add(pid);
            }
        }

        return [.. found];
    }

    /// <summary>VmRSS and VmHWM (peak RSS) of /proc/PID/status, KiB.</summary>
    public static (long RssKiB, long PeakKiB) Memory(int pid)
    {
        long rss = 0, peak = 0;
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                rss = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
            }
            else if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                peak = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
            }
        }

        return (rss, peak);
    }

    /// <summary>Resets VmHWM to the current RSS (Linux ≥ 4.0: "5" to /proc/PID/clear_refs), so the next read is the
    /// peak since now. False when the kernel refuses; VmHWM then stays the peak since process start.</summary>
    public static bool ResetPeak(int pid)
    {
        try
        {
            File.WriteAllText($"/proc/{pid}/clear_refs", "5");
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The unit of utime and stime (`getconf CLK_TCK`, 100 on Linux).</summary>
    private static double ClockTicks()
    {
        using var getconf = Process.Start(new ProcessStartInfo("getconf", ["CLK_TCK"]) { RedirectStandardOutput = true })
            ?? throw new InvalidOperationException("getconf did not start");
        var text = getconf.StandardOutput.ReadToEnd();
        getconf.WaitForExit();
        return double.Parse(text.Trim(), CultureInfo.InvariantCulture);
    }
}

internal static class ProcessStop
{
    /// <summary>Sends SIGTERM and waits up to <paramref name="grace"/> for the process to exit; then kills it and its
    /// descendants.</summary>
    public static async Task TerminateAsync(Process process, TimeSpan grace)
    {
        if (process.HasExited)
        {
            return;
        }

        using (var term = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)]))
        {
            await term!.WaitForExitAsync();
        }

        using var timeout = new CancellationTokenSource(grace);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }
}

internal sealed class Arguments(Dictionary<string, string> values)
{
    public static Arguments Parse(string[] args)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            values[args[i]] = args[i + 1];
        }

        return new Arguments(values);
    }

    public string Require(string name) => values.TryGetValue(name, out var value) ? value : throw new ArgumentException($"{name} is required.");

    public string Get(string name, string fallback) => values.GetValueOrDefault(name, fallback);

    public int Int(string name, int fallback) => values.TryGetValue(name, out var value) ? int.Parse(value, CultureInfo.InvariantCulture) : fallback;
}
