using System.Security.Cryptography;
using Gatehouse.Certificates;
using Gatehouse.Keys;
using Gatehouse.Storage;
using Gatehouse.Storage.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Gatehouse.Tests.Keys;

public sealed class KeyRingTests : IAsyncLifetime
{
    private readonly TempDirectory _directory = new();
    private SqliteStore _store = null!;
    private Dictionary<string, IMasterKeyProvider> _providers = null!;

    public Task InitializeAsync()
    {
        _store = SqliteStore.Open(Path.Combine(_directory.Path, "store.db"));
        _providers = new() { ["local"] = SoftwareKeyFileProvider.OpenOrCreate("local", Path.Combine(_directory.Path, "master.key")) };
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        foreach (var provider in _providers.Values)
        {
            provider.Dispose();
        }

        _directory.Dispose();
    }

    [Fact]
    public async Task FirstOpen_CreatesVersionOne_NamedAfterTheKeyFile_SoEarlierEnvelopesStayReadable()
    {
        var file = (SoftwareKeyFileProvider)_providers["local"];
        using var ring = await OpenAsync();

        Assert.Equal(file.FileKeyId, ring.Record.Id);
        var only = Assert.Single(ring.Record.Versions);
        Assert.Equal((1u, KeyVersionState.Active, "software", SoftwareKeyFileProvider.FileReference), (only.Version, only.State, only.Kind, only.Reference));

        // An envelope written by the first slice (the key file's key used directly, id and version from the file).
        using var legacyKey = MasterKeyFile.LoadOrCreate(file.FilePath);
        using var legacyRing = new MasterKeyRing([legacyKey], legacyKey);
        var legacy = new EnvelopeCipher(legacyRing).Seal("/r", "old"u8);
        using var opened = new EnvelopeCipher(ring).Open("/r", legacy);
        Assert.Equal("old"u8.ToArray(), opened.Span.ToArray());
    }

    [Fact]
    public async Task Rotate_NewSecretsUseTheNewVersion_OldOnesStillOpen()
    {
        using var ring = await OpenAsync();
        var cipher = new EnvelopeCipher(ring);
        var before = cipher.Seal("/a", "one"u8);

        var added = await KeyRingStore.RotateAsync(_store, ring, "local", TimeProvider.System, default);

        Assert.Equal(2u, added.Version);
        Assert.Equal(KeyVersionState.DecryptOnly, ring.Record.Find(1)!.State);
        var after = cipher.Seal("/b", "two"u8);
        Assert.True(EnvelopeCipher.TryReadKeyVersion(after, out _, out var version) && version == 2);
        using var one = cipher.Open("/a", before);
        using var two = cipher.Open("/b", after);
        Assert.Equal("one"u8.ToArray(), one.Span.ToArray());
        Assert.Equal("two"u8.ToArray(), two.Span.ToArray());
        Assert.StartsWith("aes256gcm:", added.Reference, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Rewrap_MovesEveryRecordToTheActiveVersion_KeepsPayloadBytes_AndIsIdempotent()
    {
        using var ring = await OpenAsync();
        var cipher = new EnvelopeCipher(ring);
        var plaintexts = await SeedCertificatesAsync(cipher, 70);
        var before = (await _store.ListAsync(StoreKeys.CertificatesPrefix)).Entries.ToDictionary(e => e.Key, e => CoreJson.Deserialize<CertificateRecord>(e).SealedKey!);
        await KeyRingStore.RotateAsync(_store, ring, "local", TimeProvider.System, default);
        var reports = new List<RewrapProgress>();

        var result = await new KeyRewrapper(_store, cipher, SealedRecords.All).RunAsync(new ListProgress(reports), default);

        Assert.Equal((70, 70, 0), (result.Records, result.Rewrapped, result.AlreadyCurrent));
        Assert.Empty(result.Failures);
        Assert.Equal(70, reports[^1].Done);
        foreach (var entry in (await _store.ListAsync(StoreKeys.CertificatesPrefix)).Entries)
        {
            var sealedKey = CoreJson.Deserialize<CertificateRecord>(entry).SealedKey!;
            Assert.True(cipher.IsCurrent(sealedKey));
            // Nonce, tag and ciphertext are the old bytes: only the header and the wrapped key changed.
            var payload = plaintexts[entry.Key].Length + 28;
            Assert.Equal(before[entry.Key][^payload..], sealedKey[^payload..]);
            using var opened = cipher.Open(entry.Key, sealedKey);
            Assert.Equal(plaintexts[entry.Key], opened.Span.ToArray());
        }

        var again = await new KeyRewrapper(_store, cipher, SealedRecords.All).RunAsync(null, default);
        Assert.Equal((70, 0, 70), (again.Records, again.Rewrapped, again.AlreadyCurrent));
    }

    [Fact]
    public async Task Rewrap_NeverOverwritesARecordWrittenMeanwhile()
    {
        using var ring = await OpenAsync();
        var cipher = new EnvelopeCipher(ring);
        await SeedCertificatesAsync(cipher, 80);
        await KeyRingStore.RotateAsync(_store, ring, "local", TimeProvider.System, default);
        var victim = StoreKeys.Certificate("site-79.example");
        var written = false;

        // After the first batch, another writer replaces a record the rewrapper has read but not written yet.
        var result = await new KeyRewrapper(_store, cipher, SealedRecords.All).RunAsync(new ListProgress([], p =>
        {
            if (p.Done > 0 && !written)
            {
                written = true;
                var record = new CertificateRecord { Id = "site-79.example", Names = ["site-79.example"], SealedKey = cipher.Seal(victim, "newer"u8), Serial = "newer" };
                _store.CommitAsync(new StoreTransaction().Put(victim, CoreJson.Serialize(record))).AsTask().GetAwaiter().GetResult();
            }
        }), default);

        Assert.True(written);
        Assert.Empty(result.Failures);
        var stored = CoreJson.Deserialize<CertificateRecord>((await _store.GetAsync(victim))!);
        Assert.Equal("newer", stored.Serial);
        using var opened = cipher.Open(victim, stored.SealedKey);
        Assert.Equal("newer"u8.ToArray(), opened.Span.ToArray());
    }

    [Fact]
    public async Task Retire_IsRefusedWhileRecordsNeedTheVersion_SayingHowMany_ThenRetiredVersionsAreRefusedByName()
    {
        using var ring = await OpenAsync();
        var cipher = new EnvelopeCipher(ring);
        await SeedCertificatesAsync(cipher, 3);
        var kept = cipher.Seal("/gatehouse/v1/elsewhere", "not in a sealed record kind"u8);
        await KeyRingStore.RotateAsync(_store, ring, "local", TimeProvider.System, default);

        var active = await Assert.ThrowsAsync<KeyRingException>(() => KeyRingStore.RetireAsync(_store, ring, 2, TimeProvider.System, default));
        Assert.Contains("active", active.Message, StringComparison.Ordinal);
        var needed = await Assert.ThrowsAsync<KeyRingException>(() => KeyRingStore.RetireAsync(_store, ring, 1, TimeProvider.System, default));
        Assert.Contains("still protects 3 records", needed.Message, StringComparison.Ordinal);
        Assert.Equal(KeyVersionState.DecryptOnly, (await KeyRingStore.ReadAsync(_store, default))!.Value.Record.Find(1)!.State);

        await new KeyRewrapper(_store, cipher, SealedRecords.All).RunAsync(null, default);
        var retired = await KeyRingStore.RetireAsync(_store, ring, 1, TimeProvider.System, default);

        Assert.Equal(KeyVersionState.Retired, retired.State);
        Assert.Null(retired.Reference);
        var error = Assert.Throws<EnvelopeAuthenticationException>(() => cipher.Open("/gatehouse/v1/elsewhere", kept));
        Assert.Contains("'/gatehouse/v1/elsewhere'", error.Message, StringComparison.Ordinal);
        Assert.Contains("version 1 was retired", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task KeysList_CountsRecordsPerVersion()
    {
        using var ring = await OpenAsync();
        var cipher = new EnvelopeCipher(ring);
        await SeedCertificatesAsync(cipher, 4);
        await KeyRingStore.RotateAsync(_store, ring, "local", TimeProvider.System, default);
        await SeedCertificatesAsync(cipher, 2, start: 100);

        var usage = await KeyRingStore.CountAsync(_store, SealedRecords.All, default);

        Assert.Equal(6, usage.Records);
        Assert.Equal(4, usage.ByVersion[(ring.Record.Id, 1)]);
        Assert.Equal(2, usage.ByVersion[(ring.Record.Id, 2)]);
    }

    [Fact]
    public async Task AnotherInstancesRotation_IsFoundOnFirstUse_WithoutWaitingForTheWatch()
    {
        using var first = await OpenAsync();
        using var second = await OpenAsync();
        await KeyRingStore.RotateAsync(_store, first, "local", TimeProvider.System, default);
        var sealedByFirst = new EnvelopeCipher(first).Seal("/x", "fresh"u8);

        using var opened = new EnvelopeCipher(second).Open("/x", sealedByFirst);

        Assert.Equal("fresh"u8.ToArray(), opened.Span.ToArray());
        Assert.Equal(2u, second.Active.Version);
    }

    [Fact]
    public async Task AVersionHeldByAnUnconfiguredProvider_IsAClearError()
    {
        using (var ring = await OpenAsync())
        {
            var pass = new PassphraseKeyProvider("vault", "correct horse battery staple"u8, "test", new Argon2Cost(1024, 1, 1));
            _providers["vault"] = pass;
            await KeyRingStore.RotateAsync(_store, ring, "vault", TimeProvider.System, default);
        }

        var (record, revision) = (await KeyRingStore.ReadAsync(_store, default))!.Value;
        var error = Assert.Throws<MasterKeyException>(() => KeyRing.Open(record, revision, new Dictionary<string, IMasterKeyProvider> { ["local"] = _providers["local"] }));

        Assert.Contains("provider 'vault' (passphrase)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnotherKeyFile_CannotOpenRotatedVersions_AndSaysSo()
    {
        using (var ring = await OpenAsync())
        {
            await KeyRingStore.RotateAsync(_store, ring, "local", TimeProvider.System, default);
        }

        using var other = SoftwareKeyFileProvider.OpenOrCreate("local", Path.Combine(_directory.Path, "other.key"));
        var (record, revision) = (await KeyRingStore.ReadAsync(_store, default))!.Value;

        var error = Assert.Throws<MasterKeyException>(() => KeyRing.Open(record with { Versions = [.. record.Versions.Where(v => v.Version == 2)] }, revision, new Dictionary<string, IMasterKeyProvider> { ["local"] = other }));
        Assert.Contains("other.key", error.Message, StringComparison.Ordinal);
        Assert.Contains("version 2", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MovingProviders_RotateToTheNewOne_Rewrap_RetireTheOld()
    {
        using var ring = await OpenAsync();
        var cipher = new EnvelopeCipher(ring);
        var plaintexts = await SeedCertificatesAsync(cipher, 5);
        _providers["vault"] = new PassphraseKeyProvider("vault", "correct horse battery staple"u8, "test", new Argon2Cost(1024, 1, 1));

        await KeyRingStore.RotateAsync(_store, ring, "vault", TimeProvider.System, default);
        await new KeyRewrapper(_store, cipher, SealedRecords.All).RunAsync(null, default);
        await KeyRingStore.RetireAsync(_store, ring, 1, TimeProvider.System, default);

        // The key file is no longer needed: a ring opened with the passphrase provider alone reads everything.
        var (record, revision) = (await KeyRingStore.ReadAsync(_store, default))!.Value;
        using var vaultOnly = KeyRing.Open(record, revision, new Dictionary<string, IMasterKeyProvider> { ["vault"] = _providers["vault"] });
        foreach (var entry in (await _store.ListAsync(StoreKeys.CertificatesPrefix)).Entries)
        {
            using var opened = new EnvelopeCipher(vaultOnly).Open(entry.Key, CoreJson.Deserialize<CertificateRecord>(entry).SealedKey);
            Assert.Equal(plaintexts[entry.Key], opened.Span.ToArray());
        }
    }

    [Fact]
    public async Task Maintenance_RotatesWhenThePeriodIsOver_OnOneInstance_AndRewraps()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var ring = await KeyRingStore.OpenOrCreateAsync(_store, _providers, "local", time, default);
        var cipher = new EnvelopeCipher(ring);
        await SeedCertificatesAsync(cipher, 10);
        var options = new KeyMaintenanceOptions { Provider = "local", RotationPeriod = TimeSpan.FromDays(90) };
        var first = new KeyMaintenance(_store, ring, cipher, options, time, NullLogger<KeyMaintenance>.Instance);
        using var otherRing = await KeyRingStore.OpenOrCreateAsync(_store, _providers, "local", time, default);
        var second = new KeyMaintenance(_store, otherRing, new EnvelopeCipher(otherRing), options, time, NullLogger<KeyMaintenance>.Instance);

        Assert.False(await first.RotateIfDueAsync(default));
        time.Advance(TimeSpan.FromDays(91));
        Assert.True(await first.RotateIfDueAsync(default));
        Assert.False(await second.RotateIfDueAsync(default)); // re-reads under the lock: already rotated

        var (record, _) = (await KeyRingStore.ReadAsync(_store, default))!.Value;
        Assert.Equal(2, record.Versions.Count);
        var usage = await KeyRingStore.CountAsync(_store, SealedRecords.All, default);
        Assert.Equal(10, usage.ByVersion[(record.Id, 2)]);
        Assert.False(usage.ByVersion.ContainsKey((record.Id, 1)));
    }

    private Task<KeyRing> OpenAsync() => KeyRingStore.OpenOrCreateAsync(_store, _providers, "local", TimeProvider.System, default);

    private async Task<Dictionary<string, byte[]>> SeedCertificatesAsync(EnvelopeCipher cipher, int count, int start = 0)
    {
        var plaintexts = new Dictionary<string, byte[]>();
        for (var i = start; i < start + count; i++)
        {
            var id = $"site-{i}.example";
            var key = StoreKeys.Certificate(id);
            var secret = RandomNumberGenerator.GetBytes(100 + i % 40);
            plaintexts[key] = secret;
            var record = new CertificateRecord { Id = id, Names = [id], SealedKey = cipher.Seal(key, secret), Serial = "s" + i };
            await _store.CommitAsync(new StoreTransaction().Put(key, CoreJson.Serialize(record)));
        }

        return plaintexts;
    }

    private sealed class ListProgress(List<RewrapProgress> reports, Action<RewrapProgress>? then = null) : IProgress<RewrapProgress>
    {
        public void Report(RewrapProgress value)
        {
            reports.Add(value);
            then?.Invoke(value);
        }
    }
}
