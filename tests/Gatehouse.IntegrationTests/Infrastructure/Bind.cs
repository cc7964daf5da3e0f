using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using Gatehouse.Dns;

namespace Gatehouse.IntegrationTests.Infrastructure;

/// <summary>
/// A real BIND 9 (Debian packages <c>bind9</c>, and <c>bind9-dnsutils</c> for dig and nsupdate) in the foreground,
/// authoritative for <see cref="Zone"/> on 127.0.0.1:<see cref="Port"/> (IPv4 only, no recursion), with its config,
/// zone files and journals in a temp directory that is deleted on dispose.
/// </summary>
/// <remarks>
/// <para>Zones: <c>acme.test.</c> takes dynamic updates signed with TSIG key <see cref="KeyName"/> (hmac-sha256) or
/// <see cref="Sha512KeyName"/> (hmac-sha512); <c>readonly.test.</c> is served but takes no updates. Both have a
/// wildcard <c>* A 127.0.0.1</c>, so every name under them resolves to loopback; <c>ns.acme.test.</c> is the NS.</para>
/// <para>For Pebble: start it with <c>-dnsserver 127.0.0.1:{Port}</c> (the whole address, see
/// ../shared/reference/acme-testbed.md). It then resolves every <c>*.acme.test</c> name to 127.0.0.1 for HTTP-01 and
/// TLS-ALPN-01, and reads the DNS-01 TXT records an <see cref="Rfc2136Provider"/> built from <see cref="Options"/>
/// publishes. Order certificates for names under <c>acme.test</c>.</para>
/// <para>As an xunit class fixture it starts in <see cref="InitializeAsync"/>; elsewhere use <see cref="StartAsync"/>.</para>
/// </remarks>
public sealed class Bind : IAsyncLifetime, IAsyncDisposable
{
    public const string Zone = "acme.test.";
    public const string ReadOnlyZone = "readonly.test.";
    public const string KeyName = "gatehouse";
    public const string Sha512KeyName = "gatehouse-sha512";
    private const string Named = "/usr/sbin/named";

    private readonly ConcurrentQueue<string> _log = new();
    private Process? _process;

    public string Directory { get; } = Path.Combine(Path.GetTempPath(), "gatehouse-bind-" + Guid.NewGuid().ToString("N")[..12]);

    public int Port { get; private set; }

    /// <summary><c>127.0.0.1:PORT</c>, as <see cref="Rfc2136Options.Server"/> and Pebble's -dnsserver take it.</summary>
    public string Server => $"127.0.0.1:{Port}";

    public byte[] Secret { get; } = RandomNumberGenerator.GetBytes(32);

    public byte[] Sha512Secret { get; } = RandomNumberGenerator.GetBytes(64);

    /// <summary>What named wrote (it runs with -g: logs on stderr).</summary>
    public string Log => string.Join('\n', _log);

    public static async Task<Bind> StartAsync()
    {
        var bind = new Bind();
        await bind.InitializeAsync();
        return bind;
    }

    /// <summary>Options for an <see cref="Rfc2136Provider"/> that updates this server, with the zone found by SOA
    /// queries unless <paramref name="zone"/> is given.</summary>
    public Rfc2136Options Options(string? zone = null, string keyName = KeyName, byte[]? secret = null, TsigAlgorithm algorithm = TsigAlgorithm.HmacSha256) => new()
    {
        Server = Server,
        Zone = zone,
        KeyName = keyName,
        Algorithm = algorithm,
        Secret = secret ?? (algorithm == TsigAlgorithm.HmacSha512 ? Sha512Secret : Secret),
        Timeout = TimeSpan.FromSeconds(2),
    };

    /// <summary>The TXT values at <paramref name="name"/> as dig (an independent client) sees them.</summary>
    public async Task<string[]> DigTxtAsync(string name)
    {
        var result = await Tools.RunAsync("dig", ["+norec", "+short", "+time=2", "+tries=1", "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "@127.0.0.1", name, "TXT"], Directory);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"dig failed ({result.ExitCode}): {result.StandardOutput}{result.StandardError}");
        }

        return result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Replace("\" \"", "", StringComparison.Ordinal).Trim('"'))
            .Order(StringComparer.Ordinal)
            .ToArray();
    }

    public async Task InitializeAsync()
    {
        if (!File.Exists(Named))
        {
            throw new InvalidOperationException($"BIND is not installed ({Named} is missing); run: apt-get install bind9 bind9-dnsutils");
        }

        System.IO.Directory.CreateDirectory(Directory);
        // A port picked free over TCP may still be taken over UDP: a few tries.
        for (var attempt = 1; ; attempt++)
        {
            Port = Ports.Free();
            WriteConfig();
            if (await TryStartAsync())
            {
                return;
            }

            await StopAsync();
            if (attempt == 3)
            {
                throw new InvalidOperationException($"named did not start answering on {Server}:\n{Log}");
            }
        }
    }

    private void WriteConfig()
    {
        var dir = Directory;
        File.WriteAllText(Path.Combine(dir, "named.conf"), $$"""
            options {
                directory "{{dir}}";
                pid-file "{{dir}}/named.pid";
                session-keyfile "{{dir}}/session.key";
                managed-keys-directory "{{dir}}";
                listen-on port {{Port}} { 127.0.0.1; };
                listen-on-v6 { none; };
                recursion no;
                dnssec-validation no;
                notify no;
            };
            // No rndc channel: the default one would bind 127.0.0.1:953 in every instance.
            controls { };
            key "{{KeyName}}" { algorithm hmac-sha256; secret "{{Convert.ToBase64String(Secret)}}"; };
            key "{{Sha512KeyName}}" { algorithm hmac-sha512; secret "{{Convert.ToBase64String(Sha512Secret)}}"; };
            zone "{{Zone}}" { type primary; file "acme.test.zone"; allow-update { key "{{KeyName}}"; key "{{Sha512KeyName}}"; }; };
            zone "{{ReadOnlyZone}}" { type primary; file "readonly.test.zone"; };

            """);
        foreach (var (zone, file) in new[] { (Zone, "acme.test.zone"), (ReadOnlyZone, "readonly.test.zone") })
        {
            var glue = zone == Zone ? "ns IN A 127.0.0.1" : "";
            File.WriteAllText(Path.Combine(dir, file), $"""
                $TTL 60
                @ IN SOA ns.acme.test. hostmaster.{zone} 1 3600 600 86400 60
                @ IN NS ns.acme.test.
                {glue}
                * IN A 127.0.0.1

                """);
            File.Delete(Path.Combine(dir, file + ".jnl"));
        }
    }

    private async Task<bool> TryStartAsync()
    {
        // -g: foreground, logs to stderr; -4: IPv4 only; -n 1: one worker (two cores are shared with the tests).
        // It keeps the user that starts it: no -u, so it can write its temp directory as root or not.
        var start = new ProcessStartInfo(Named)
        {
            ArgumentList = { "-g", "-4", "-n", "1", "-c", Path.Combine(Directory, "named.conf") },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var process = Process.Start(start) ?? throw new InvalidOperationException("named did not start");
        _process = process;
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                _log.Enqueue(e.Data);
            }
        };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                _log.Enqueue(e.Data);
            }
        };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();

        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(15))
        {
            if (process.HasExited)
            {
                return false;
            }

            var soa = await Tools.RunAsync("dig", ["+norec", "+short", "+time=1", "+tries=1", "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "@127.0.0.1", Zone, "SOA"], Directory);
            if (soa.ExitCode == 0 && soa.StandardOutput.Contains("ns.acme.test.", StringComparison.Ordinal))
            {
                return true;
            }

            await Task.Delay(100);
        }

        return false;
    }

    private async Task StopAsync()
    {
        if (_process is { } process)
        {
            _process = null;
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // already gone
            }

            await process.WaitForExitAsync();
            process.Dispose();
        }
    }

    public async Task DisposeAsync()
    {
        await StopAsync();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    async ValueTask IAsyncDisposable.DisposeAsync() => await DisposeAsync();
}
