using System.Net;
using System.Security.Cryptography;
using System.Text;
using Gatehouse.Certificates;
using Gatehouse.IntegrationTests.Infrastructure;
using Gatehouse.Keys;
using Gatehouse.Storage;

namespace Gatehouse.IntegrationTests;

/// <summary>What survives a restart, and what never reaches the disk: private keys in plaintext.</summary>
public sealed class PersistenceAndSecrecyTests : IAsyncLifetime
{
    private Backend _backend = null!;
    private GatehouseInstance _gatehouse = null!;

    public async Task InitializeAsync()
    {
        _backend = await Backend.StartAsync("persist");
        _gatehouse = await GatehouseInstance.StartAsync($$"""

              - hosts: [kept.test, "*.kept.test"]
                backends: [{{_backend.Url}}]
            """);
    }

    public async Task DisposeAsync()
    {
        await _gatehouse.DisposeAsync();
        await _backend.DisposeAsync();
    }

    [Fact]
    public async Task Restart_SameDataDirectory_KeepsSitesCertificatesRootAndToken()
    {
        using (var admin = _gatehouse.AdminClient())
        {
            using var created = await admin.PostAsync("v1/sites", new StringContent($$"""{"hosts":["api-added.test"],"backends":["{{_backend.Url}}"]}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        Assert.True(await GatehouseInstance.EventuallyAsync(() => Task.FromResult(_gatehouse.Server.Cache.TryMatch("api-added.test", out _)), TimeSpan.FromSeconds(5)));
        var rootBefore = _gatehouse.Root.Thumbprint;
        var tokenBefore = _gatehouse.AdminToken;
        var serials = Serials();

        await _gatehouse.RestartAsync();

        Assert.Equal(rootBefore, _gatehouse.Root.Thumbprint);
        Assert.Equal(tokenBefore, _gatehouse.AdminToken);
        Assert.True(await GatehouseInstance.EventuallyAsync(() => Task.FromResult(_gatehouse.Server.Cache.Count == 2), TimeSpan.FromSeconds(5)));
        Assert.Equal(serials, Serials()); // the same certificates, not new ones
        using var edge = _gatehouse.EdgeClient();
        using var response = await edge.GetAsync($"https://api-added.test:{_gatehouse.HttpsPort}/");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var wildcard = await edge.GetAsync($"https://www.kept.test:{_gatehouse.HttpsPort}/");
        Assert.Equal(HttpStatusCode.OK, wildcard.StatusCode);
    }

    [Fact]
    public async Task DataDirectory_WhileRunningAndAfterStop_HoldsNoPrivateKeyMaterial()
    {
        // Every private key the server made: the local CA's two and each leaf (the admin listener's included).
        var scalars = await PrivateScalarsAsync();
        Assert.True(scalars.Count >= 4, $"expected CA root, intermediate and two leaves, found {scalars.Count}");

        var scanner = new KeyMaterialScanner(scalars);
        Assert.Empty(scanner.Scan(_gatehouse.DataDirectory, except: "master.key"));
        Assert.True(File.Exists(Path.Combine(_gatehouse.DataDirectory, "gatehouse.db-wal")));

        await _gatehouse.StopAsync();
        Assert.Empty(scanner.Scan(_gatehouse.DataDirectory, except: "master.key"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_gatehouse.DataDirectory, "master.key")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_gatehouse.DataDirectory, "admin.token")));

        // The scanner itself finds each kind of material it looks for (so an empty result means something).
        using var planted = new TempFiles();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        planted.Write("pem.txt", key.ExportPkcs8PrivateKeyPem());
        planted.Write("pkcs8.der", key.ExportPkcs8PrivateKey());
        planted.Write("sec1.der", key.ExportECPrivateKey());
        planted.Write("raw.bin", [.. RandomNumberGenerator.GetBytes(100), .. scalars[0], .. RandomNumberGenerator.GetBytes(100)]);
        Assert.Equal(4, new KeyMaterialScanner(scalars).Scan(planted.Path, except: null).Select(f => f.File).Distinct().Count());
    }

    [Fact]
    public async Task Logs_NeverContainKeyMaterialOrTheAdminToken()
    {
        var scalars = await PrivateScalarsAsync();
        var token = _gatehouse.AdminToken;
        var logs = string.Join("\n", _gatehouse.Logs);
        Assert.Contains("Issued certificate kept.test", logs, StringComparison.Ordinal);
        Assert.DoesNotContain("PRIVATE KEY", logs, StringComparison.Ordinal);
        Assert.DoesNotContain(token, logs, StringComparison.Ordinal);
        foreach (var scalar in scalars)
        {
            Assert.DoesNotContain(Convert.ToHexString(scalar), logs, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain(Convert.ToBase64String(scalar), logs, StringComparison.Ordinal);
        }
    }

    private Dictionary<string, string?> Serials() =>
        _gatehouse.Server.Cache.TryMatch("kept.test", out var a) && _gatehouse.Server.Cache.TryMatch("api-added.test", out var b)
            ? new() { ["kept.test"] = a.Serial, ["api-added.test"] = b.Serial }
            : [];

    /// <summary>Opens every sealed key in the store (the test holds the master key file) and returns the EC scalars.</summary>
    private async Task<List<byte[]>> PrivateScalarsAsync()
    {
        using var master = MasterKeyFile.LoadOrCreate(Path.Combine(_gatehouse.DataDirectory, "master.key"));
        var cipher = new EnvelopeCipher(new MasterKeyRing([], master));
        var store = _gatehouse.Server.Store;
        var sealedKeys = new List<(string Key, byte[] Sealed)>();
        foreach (var key in new[] { StoreKeys.LocalCaRoot, StoreKeys.LocalCaIntermediate })
        {
            var entry = (await store.GetAsync(key))!;
            sealedKeys.Add((key, CoreJson.Deserialize<LocalCaRecord>(entry).SealedKey));
        }

        Assert.True(await GatehouseInstance.EventuallyAsync(async () => (await store.ListAsync(StoreKeys.CertificatesPrefix)).Entries.Count >= 2, TimeSpan.FromSeconds(5)));
        foreach (var entry in (await store.ListAsync(StoreKeys.CertificatesPrefix)).Entries)
        {
            sealedKeys.Add((entry.Key, CoreJson.Deserialize<CertificateRecord>(entry).SealedKey!));
        }

        return KeyMaterialScanner.Scalars(cipher, sealedKeys);
    }

    private sealed class TempFiles : IDisposable
    {
        public TempFiles() => Directory.CreateDirectory(Path);

        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "gatehouse-scan-" + Guid.NewGuid().ToString("N")[..8]);

        public void Write(string name, string text) => File.WriteAllText(System.IO.Path.Combine(Path, name), text);

        public void Write(string name, byte[] bytes) => File.WriteAllBytes(System.IO.Path.Combine(Path, name), bytes);

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
