using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Gatehouse.Keys.Pkcs11;

namespace Gatehouse.IntegrationTests.Infrastructure;

/// <summary>
/// A real SoftHSM2 (Debian package softhsm2): its own config and token directory in a temp dir, and a token initialised
/// with <c>softhsm2-util</c>. Deleted on dispose.
/// </summary>
/// <remarks>
/// SoftHSM reads <c>SOFTHSM2_CONF</c> and lists its tokens once, at C_Initialize, so test classes that use it belong to
/// <see cref="Collection"/> (one at a time), make their tokens before any provider loads the module, and dispose their
/// providers before they end (the last provider finalises the module; the next class initialises it again).
/// </remarks>
public sealed class SoftHsm : IDisposable
{
    /// <summary>The xunit collection of the test classes that load SoftHSM.</summary>
    public const string Collection = "SoftHSM";

    private static readonly string[] LibraryCandidates =
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    ];

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "gatehouse-softhsm-" + Guid.NewGuid().ToString("N")[..12]);
    private readonly string _configPath;

    public SoftHsm()
    {
        LibraryPath = LibraryCandidates.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException($"SoftHSM2 is not installed (none of {string.Join(", ", LibraryCandidates)}); run: apt-get install softhsm2");
        Directory.CreateDirectory(Path.Combine(_directory, "tokens"));
        _configPath = Path.Combine(_directory, "softhsm2.conf");
        File.WriteAllText(_configPath, $"""
            directories.tokendir = {Path.Combine(_directory, "tokens")}
            objectstore.backend = file
            log.level = ERROR
            slots.removable = false

            """);

        // The runtime keeps its own copy of the environment on Unix; the module reads the C library's.
        Environment.SetEnvironmentVariable("SOFTHSM2_CONF", _configPath);
        if (setenv("SOFTHSM2_CONF", _configPath, 1) != 0)
        {
            throw new InvalidOperationException("setenv(SOFTHSM2_CONF) failed");
        }

        TokenLabel = CreateToken("gatehouse-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4)));
    }

    public string LibraryPath { get; }

    /// <summary>The token made by the constructor.</summary>
    public string TokenLabel { get; }

    /// <summary>The user PIN of every token this fixture makes: random, so a test can look for it in a message.</summary>
    public string Pin { get; } = "pin-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));

    public string SoPin { get; } = "so-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));

    /// <summary>Options for a provider over <see cref="TokenLabel"/> (or <paramref name="tokenLabel"/>).</summary>
    public Pkcs11Options Options(string keyLabel, string? tokenLabel = null, string? pin = null, int poolSize = 8) => new()
    {
        Name = "hsm",
        LibraryPath = LibraryPath,
        TokenLabel = tokenLabel ?? TokenLabel,
        Pin = pin ?? Pin,
        KeyLabel = keyLabel,
        PoolSize = poolSize,
    };

    /// <summary>Initialises another token with <see cref="Pin"/>; the module sees it from its next C_Initialize.</summary>
    public string CreateToken(string label)
    {
        var start = new ProcessStartInfo("softhsm2-util")
        {
            ArgumentList = { "--init-token", "--free", "--label", label, "--so-pin", SoPin, "--pin", Pin },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment = { ["SOFTHSM2_CONF"] = _configPath },
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException("softhsm2-util did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        if (!process.WaitForExit(30_000) || process.ExitCode != 0)
        {
            throw new InvalidOperationException($"softhsm2-util --init-token failed ({(process.HasExited ? process.ExitCode : "timeout")}): {stdout.Result}{stderr}");
        }

        return label;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [DllImport("libc", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int setenv([MarshalAs(UnmanagedType.LPUTF8Str)] string name, [MarshalAs(UnmanagedType.LPUTF8Str)] string value, int overwrite);
}

/// <summary>The test classes that load SoftHSM run one after the other: it has one configuration per process.</summary>
[CollectionDefinition(SoftHsm.Collection)]
public sealed class SoftHsmCollection;
