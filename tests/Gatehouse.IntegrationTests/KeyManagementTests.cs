using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Gatehouse.Certificates;
using Gatehouse.IntegrationTests.Infrastructure;
using Gatehouse.Keys;
using Gatehouse.Storage;
using Gatehouse.Storage.Sqlite;

namespace Gatehouse.IntegrationTests;

/// <summary>Rotation, rewrap and retirement with the real executable against a running server, and what is on disk after.</summary>
public sealed class KeyManagementTests : IAsyncLifetime
{
    private Backend _backend = null!;
    private GatehouseInstance _gatehouse = null!;

    public async Task InitializeAsync()
    {
        _backend = await Backend.StartAsync("keys");
        _gatehouse = await GatehouseInstance.StartAsync($$"""

              - hosts: [one.keys.test]
                backends: [{{_backend.Url}}]
              - hosts: [two.keys.test, "*.two.keys.test"]
                backends: [{{_backend.Url}}]
            """);
    }

    public async Task DisposeAsync()
    {
        await _gatehouse.DisposeAsync();
        await _backend.DisposeAsync();
    }

    [Fact]
    public async Task RotateTwice_Rewrap_Retire_WhileServing_ThenNothingOnDiskIsKeyMaterial()
    {
        await _gatehouse.WaitUntilServedAsync(["one.keys.test", "two.keys.test"]);
        Assert.Equal(0, (await Keys("rotate")).ExitCode);

        // The running server picks the rotation up from the store: a site added now is sealed with version 2.
        using (var admin = _gatehouse.AdminClient())
        {
            Assert.True(await GatehouseInstance.EventuallyAsync(() => Task.FromResult(ActiveVersionSeenByServer() == 2), TimeSpan.FromSeconds(10)));
            using var created = await admin.PostAsync("v1/sites", new StringContent($$"""{"hosts":["three.keys.test"],"backends":["{{_backend.Url}}"]}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        await _gatehouse.WaitUntilServedAsync(["three.keys.test"]);
        Assert.Equal(2u, VersionOf(await SealedKeyAsync(StoreKeys.Certificate("three.keys.test"))));

        Assert.Equal(0, (await Keys("rotate")).ExitCode);
        var versionKeys = await VersionKeysAsync(); // versions 2 and 3 (version 1 is the key file's own key)
        Assert.Equal(2, versionKeys.Count);
        var refused = await Keys("retire", "1");
        Assert.Equal(1, refused.ExitCode);
        Assert.Matches(@"Version 1 still protects \d+ records; run `gatehouse keys rewrap` first", refused.StandardError);

        var rewrap = await Keys("rewrap");
        Assert.True(rewrap.ExitCode == 0, rewrap.StandardError);
        Assert.Contains("0 failed", rewrap.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(0, (await Keys("retire", "1")).ExitCode);
        Assert.Equal(0, (await Keys("retire", "2")).ExitCode);

        var list = JsonDocument.Parse((await Keys("list", "--json")).StandardOutput).RootElement;
        var versions = list.GetProperty("versions").EnumerateArray().Select(v => (v.GetProperty("version").GetInt32(), v.GetProperty("state").GetString(), v.GetProperty("records").GetInt32())).ToList();
        var records = list.GetProperty("records").GetInt32();
        Assert.Equal([(1, "retired", 0), (2, "retired", 0), (3, "active", records)], versions);
        Assert.True(records >= 6, $"CA root, intermediate, admin and three site certificates, found {records}");

        // Every site is still served, and still after a restart with the rotated ring.
        await _gatehouse.WaitUntilServedAsync(["one.keys.test", "www.two.keys.test", "three.keys.test"]);
        var serials = SerialsServed("one.keys.test", "two.keys.test", "three.keys.test");
        await _gatehouse.RestartAsync();
        await _gatehouse.WaitUntilServedAsync(["one.keys.test", "www.two.keys.test", "three.keys.test"]);
        Assert.Equal(serials, SerialsServed("one.keys.test", "two.keys.test", "three.keys.test"));

        // Nothing at rest: no PEM, PKCS#8 or SEC1 key, no raw private scalar, no raw master key version, anywhere in
        // the data directory (SQLite file, its WAL, everything) except the key file itself, which is 0600.
        var scalars = await PrivateScalarsAsync();
        Assert.Equal(records, scalars.Count);
        var scanner = new KeyMaterialScanner([.. scalars, .. versionKeys]);
        Assert.Empty(scanner.Scan(_gatehouse.DataDirectory, except: "master.key"));
        await _gatehouse.StopAsync();
        Assert.Empty(scanner.Scan(_gatehouse.DataDirectory, except: "master.key"));
        var fileKey = FileKey();
        Assert.Empty(new KeyMaterialScanner([fileKey, Encoding.ASCII.GetBytes(Convert.ToBase64String(fileKey))]).Scan(_gatehouse.DataDirectory, except: "master.key"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_gatehouse.DataDirectory, "master.key")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(_gatehouse.DataDirectory));
    }

    [Fact]
    public async Task Rewrap_KilledWithSigkillAtAnyMoment_ARerunFinishes_AndNoRecordIsLostOrUnreadable()
    {
        await _gatehouse.StopAsync();
        const int Count = 20_000;
        var plaintexts = await SeedAndRotateAsync(Count);

        var kills = new List<int>();
        foreach (var killAfterLines in new[] { 1, 2, 4 })
        {
            kills.Add(await RewrapAndKillAsync(killAfterLines, Count));
        }

        // Each kill landed mid-run: some records moved, not all.
        Assert.All(kills, moved => Assert.InRange(moved, 1, Count - 1));
        var finish = await Keys("rewrap");
        Assert.True(finish.ExitCode == 0, finish.StandardError);
        Assert.Contains("0 failed", finish.StandardOutput, StringComparison.Ordinal);

        await using var store = SqliteStore.Open(Path.Combine(_gatehouse.DataDirectory, "gatehouse.db"));
        using var ring = await OpenRingAsync(store);
        var cipher = new EnvelopeCipher(ring);
        var entries = (await store.ListAsync(StoreKeys.CertificatesPrefix)).Entries.Where(e => e.Key.Contains("bulk-", StringComparison.Ordinal)).ToList();
        Assert.Equal(Count, entries.Count);
        foreach (var entry in entries)
        {
            var sealedKey = CoreJson.Deserialize<CertificateRecord>(entry).SealedKey!;
            Assert.True(cipher.IsCurrent(sealedKey), entry.Key);
            using var opened = cipher.Open(entry.Key, sealedKey);
            Assert.True(opened.Span.SequenceEqual(plaintexts[entry.Key]), entry.Key);
        }
    }

    /// <summary>Runs rewrap, SIGKILLs it after its Nth progress line; returns how many records were on the new version then.</summary>
    private async Task<int> RewrapAndKillAsync(int killAfterLines, int count)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = _gatehouse.Directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { Tools.GatehouseDll, "keys", "rewrap", "--config", _gatehouse.ConfigPath })
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var lines = 0;
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (await process.StandardOutput.ReadLineAsync(deadline.Token) is { } line)
        {
            if (line.StartsWith("rewrap:", StringComparison.Ordinal) && ++lines == killAfterLines)
            {
                process.Kill(); // SIGKILL
                break;
            }
        }

        await process.WaitForExitAsync(deadline.Token);
        Assert.True(lines == killAfterLines, $"rewrap ended before its progress line {killAfterLines}: {await process.StandardError.ReadToEndAsync()}");
        await using var store = SqliteStore.Open(Path.Combine(_gatehouse.DataDirectory, "gatehouse.db"));
        var usage = await KeyRingStore.CountAsync(store, [SealedRecords.Certificates], default);
        var (record, _) = (await KeyRingStore.ReadAsync(store, default))!.Value;
        Assert.Equal(usage.Records, usage.ByVersion.Values.Sum()); // every record is on exactly one version
        return usage.ByVersion.GetValueOrDefault((record.Id, 2u)) - (usage.Records - count);
    }

    private async Task<Dictionary<string, byte[]>> SeedAndRotateAsync(int count)
    {
        var plaintexts = new Dictionary<string, byte[]>();
        await using var store = SqliteStore.Open(Path.Combine(_gatehouse.DataDirectory, "gatehouse.db"));
        using var ring = await OpenRingAsync(store);
        var cipher = new EnvelopeCipher(ring);
        for (var batch = 0; batch < count / 100; batch++)
        {
            var transaction = new StoreTransaction();
            for (var i = batch * 100; i < (batch + 1) * 100; i++)
            {
                var id = $"bulk-{i}.keys.test";
                var key = StoreKeys.Certificate(id);
                var secret = RandomNumberGenerator.GetBytes(138);
                plaintexts[key] = secret;
                transaction.Put(key, CoreJson.Serialize(new CertificateRecord { Id = id, Names = [id], SealedKey = cipher.Seal(key, secret) }));
            }

            Assert.True((await store.CommitAsync(transaction)).Succeeded);
        }

        await KeyRingStore.RotateAsync(store, ring, "local", TimeProvider.System, default);
        return plaintexts;
    }

    private Task<KeyRing> OpenRingAsync(IStore store) => _gatehouse.OpenKeyRingAsync(store);

    private Task<ToolResult> Keys(params string[] args) =>
        Tools.GatehouseAsync(_gatehouse.Directory, ["keys", .. args, "--config", _gatehouse.ConfigPath], TimeSpan.FromSeconds(60));

    private uint ActiveVersionSeenByServer() => _gatehouse.Server.ActiveKeyVersion;

    private async Task<byte[]> SealedKeyAsync(string key) => CoreJson.Deserialize<CertificateRecord>((await _gatehouse.Server.Store.GetAsync(key))!).SealedKey!;

    private static uint VersionOf(byte[] envelope) => EnvelopeCipher.TryReadKeyVersion(envelope, out _, out var version) ? version : 0;

    private Dictionary<string, string> SerialsServed(params string[] hosts) =>
        hosts.ToDictionary(h => h, h => _gatehouse.Server.Cache.TryMatch(h, out var c) ? c.Serial : "none");

    private byte[] FileKey()
    {
        using var file = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(_gatehouse.DataDirectory, "master.key")));
        return Convert.FromBase64String(file.RootElement.GetProperty("key").GetString()!);
    }

    /// <summary>The raw keys of the master key versions the ring wraps with the key file, recovered from the
    /// documented formats (as an operator holding the key file could), not through Gatehouse's own code.</summary>
    private async Task<List<byte[]>> VersionKeysAsync()
    {
        var (ring, _) = (await KeyRingStore.ReadAsync(_gatehouse.Server.Store, default))!.Value;
        using var aes = new AesGcm(FileKey(), 16);
        var keys = new List<byte[]>();
        foreach (var version in ring.Versions.Where(v => v.Reference?.StartsWith("aes256gcm:", StringComparison.Ordinal) == true))
        {
            var wrapped = Convert.FromBase64String(version.Reference!["aes256gcm:".Length..]);
            var key = new byte[32];
            aes.Decrypt(wrapped[..12], wrapped[12..44], wrapped[44..], key, Encoding.ASCII.GetBytes($"gatehouse-master-version-v1|{ring.Id}|{version.Version}"));
            keys.Add(key);
        }

        return keys;
    }

    /// <summary>The raw private scalar of every sealed key in the store.</summary>
    private async Task<List<byte[]>> PrivateScalarsAsync()
    {
        await using var store = SqliteStore.Open(Path.Combine(_gatehouse.DataDirectory, "gatehouse.db"));
        using var ring = await OpenRingAsync(store);
        var cipher = new EnvelopeCipher(ring);
        var scalars = new List<byte[]>();
        foreach (var kind in SealedRecords.All)
        {
            foreach (var entry in (await store.ListAsync(kind.Prefix)).Entries)
            {
                foreach (var sealedKey in kind.Envelopes(entry))
                {
                    using var pkcs8 = cipher.Open(entry.Key, sealedKey);
                    using var ec = ECDsa.Create();
                    ec.ImportPkcs8PrivateKey(pkcs8.Span, out _);
                    scalars.Add(ec.ExportParameters(true).D!);
                }
            }
        }

        return scalars;
    }
}
