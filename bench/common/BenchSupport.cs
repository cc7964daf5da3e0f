// Helpers shared by the bench programs (compiled into each, see their .csproj): /proc readings, stopping a process,
// "--name value" arguments and server certificates.
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

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

    /// <summary>Seconds core <paramref name="cpu"/> spent busy since boot: the user, nice, system, irq, softirq and
    /// steal columns of its /proc/stat line (so the kernel's loopback network work on that core counts too).</summary>
    public static double CoreBusySeconds(int cpu)
    {
        var prefix = "cpu" + cpu.ToString(CultureInfo.InvariantCulture) + " ";
        foreach (var line in File.ReadLines("/proc/stat"))
        {
            if (line.StartsWith(prefix, StringComparison.Ordinal))
            {
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                long Field(int i) => long.Parse(fields[i], CultureInfo.InvariantCulture);
                return (Field(1) + Field(2) + Field(3) + Field(6) + Field(7) + Field(8)) / TicksPerSecond;
            }
        }

        throw new InvalidOperationException($"/proc/stat has no line for core {cpu}");
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

/// <summary>Certificates the benches make for their peers: what a public CA would issue to a web server.</summary>
internal static class BenchPki
{
    /// <summary>A TLS server leaf for <paramref name="name"/> (SAN, serverAuth, not a CA) with
    /// <paramref name="key"/>, signed by <paramref name="issuer"/> through <paramref name="signer"/>, valid from an hour
    /// ago for <paramref name="validity"/>, with a random 16-byte serial.</summary>
    public static X509Certificate2 CreateServerLeaf(string name, ECDsa key, X509Certificate2 issuer, X509SignatureGenerator signer, TimeSpan validity)
    {
        var request = new CertificateRequest("CN=" + name, key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(name);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        var now = DateTimeOffset.UtcNow;
        return request.Create(issuer.SubjectName, signer, now.AddHours(-1), now + validity, RandomNumberGenerator.GetBytes(16));
    }
}

