using System.Security.Cryptography;
using Gatehouse.Storage;

namespace Gatehouse.Keys;

/// <summary>
/// The key ring's life in the store: created once, then rotated and retired by compare-and-swap on
/// <see cref="StoreKeys.KeyRing"/>, so any number of instances and CLI runs can race and the ring stays whole.
/// </summary>
public static class KeyRingStore
{
    /// <summary>Reads the ring and opens it; creates it with version 1 on <paramref name="provider"/> when the store
    /// has none (a key the provider already holds, such as a pre-made HSM key, becomes version 1).</summary>
    /// <exception cref="MasterKeyException">A provider cannot open a version; the message names the cause.</exception>
    public static async Task<KeyRing> OpenOrCreateAsync(IStore store, IReadOnlyDictionary<string, IMasterKeyProvider> providers, string provider, TimeProvider time, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (await ReadAsync(store, cancellationToken) is var (record, revision))
            {
                var ring = KeyRing.Open(record, revision, providers, time);
                ring.OnMissingVersion(() => ReadAsync(store, CancellationToken.None).AsTask().GetAwaiter().GetResult()?.Record);
                return ring;
            }

            var chosen = Provider(providers, provider);
            var ringId = chosen is SoftwareKeyFileProvider file ? file.FileKeyId : "ring-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
            MasterKeyVersion? created = null;
            string reference;
            if (chosen.BootstrapReference is { } existing)
            {
                chosen.OpenVersion(ringId, 1, existing).Dispose(); // fails clearly when the key is not there
                reference = existing;
            }
            else
            {
                created = chosen.CreateVersion(ringId, 1);
                created.Key.Dispose();
                reference = created.Reference;
            }

            var fresh = new KeyRingRecord
            {
                Id = ringId,
                Versions = [new KeyVersionRecord { Version = 1, State = KeyVersionState.Active, Provider = chosen.Name, Kind = chosen.Kind, Created = time.GetUtcNow(), Reference = reference }],
            };
            var result = await store.CommitAsync(new StoreTransaction().If(StoreCondition.Absent(StoreKeys.KeyRing)).Put(StoreKeys.KeyRing, CoreJson.Serialize(fresh)), cancellationToken);
            if (!result.Succeeded && created is not null)
            {
                chosen.DestroyVersion(ringId, 1, created.Reference); // another process made the ring first: use theirs
            }
        }
    }

    /// <summary>Creates the ring with version 1 on <paramref name="provider"/>, making the key when the provider does
    /// not hold one yet (<c>gatehouse keys init</c>).</summary>
    /// <exception cref="KeyRingException">The store already has a key ring.</exception>
    public static async Task<KeyRingRecord> InitializeAsync(IStore store, IMasterKeyProvider provider, TimeProvider time, CancellationToken cancellationToken)
    {
        if (await ReadAsync(store, cancellationToken) is var (existing, _))
        {
            throw new KeyRingException($"The store already has key ring '{existing.Id}' with {existing.Versions.Count} version(s); use `gatehouse keys rotate` to add one.");
        }

        var ringId = provider is SoftwareKeyFileProvider file ? file.FileKeyId : "ring-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
        string reference;
        var created = false;
        try
        {
            provider.OpenVersion(ringId, 1, provider.BootstrapReference ?? throw new MasterKeyException("no bootstrap key")).Dispose();
            reference = provider.BootstrapReference;
        }
        catch (MasterKeyException)
        {
            var version = provider.CreateVersion(ringId, 1);
            version.Key.Dispose();
            reference = version.Reference;
            created = true;
        }

        var record = new KeyRingRecord
        {
            Id = ringId,
            Versions = [new KeyVersionRecord { Version = 1, State = KeyVersionState.Active, Provider = provider.Name, Kind = provider.Kind, Created = time.GetUtcNow(), Reference = reference }],
        };
        var result = await store.CommitAsync(new StoreTransaction().If(StoreCondition.Absent(StoreKeys.KeyRing)).Put(StoreKeys.KeyRing, CoreJson.Serialize(record)), cancellationToken);
        if (!result.Succeeded)
        {
            if (created)
            {
                provider.DestroyVersion(ringId, 1, reference);
            }

            throw new KeyRingException("Another process created the key ring at the same time; nothing was changed here.");
        }

        return record;
    }

    /// <summary>Adds a new active version on <paramref name="provider"/>; the previous active version becomes
    /// decrypt-only. Applies the new ring to <paramref name="ring"/>.</summary>
    /// <exception cref="KeyRingException">The ring changed meanwhile (another rotation); nothing was changed.</exception>
    public static async Task<KeyVersionRecord> RotateAsync(IStore store, KeyRing ring, string provider, TimeProvider time, CancellationToken cancellationToken)
    {
        var chosen = Provider(ring.Providers, provider);
        var (record, revision) = await ReadAsync(store, cancellationToken) ?? throw new KeyRingException("The store has no key ring.");
        var number = record.Versions.Max(v => v.Version) + 1;
        var created = chosen.CreateVersion(record.Id, number);
        created.Key.Dispose();
        var added = new KeyVersionRecord { Version = number, State = KeyVersionState.Active, Provider = chosen.Name, Kind = chosen.Kind, Created = time.GetUtcNow(), Reference = created.Reference };
        var rotated = record with
        {
            Versions = [.. record.Versions.Select(v => v.State == KeyVersionState.Active ? v with { State = KeyVersionState.DecryptOnly } : v), added],
        };
        var result = await store.CommitAsync(new StoreTransaction().If(StoreCondition.Unchanged(StoreKeys.KeyRing, revision)).Put(StoreKeys.KeyRing, CoreJson.Serialize(rotated)), cancellationToken);
        if (!result.Succeeded)
        {
            chosen.DestroyVersion(record.Id, number, created.Reference);
            throw new KeyRingException("The key ring changed while rotating (another instance rotated at the same moment); nothing was changed here. Run `gatehouse keys list` and try again if needed.");
        }

        ring.Apply(rotated, result.Revision);
        return added;
    }

    /// <summary>Retires a version: refused while it is active or any record still needs it. The ring forgets the
    /// reference and the provider destroys what it holds (an HSM object).</summary>
    /// <returns>The retired version; unchanged when it was retired already.</returns>
    /// <exception cref="KeyRingException">The version does not exist, is active, or still protects records.</exception>
    public static async Task<KeyVersionRecord> RetireAsync(IStore store, KeyRing ring, uint version, TimeProvider time, CancellationToken cancellationToken)
    {
        var (record, revision) = await ReadAsync(store, cancellationToken) ?? throw new KeyRingException("The store has no key ring.");
        var target = record.Find(version) ?? throw new KeyRingException($"Key ring '{record.Id}' has no version {version} (versions: {string.Join(", ", record.Versions.Select(v => v.Version))}).");
        switch (target.State)
        {
            case KeyVersionState.Retired:
                return target;
            case KeyVersionState.Active:
                throw new KeyRingException($"Version {version} is the active version; rotate first (`gatehouse keys rotate`), rewrap, then retire it.");
        }

        var usage = await CountAsync(store, SealedRecords.All, cancellationToken);
        if (usage.ByVersion.GetValueOrDefault((record.Id, version)) is var needed and > 0)
        {
            throw new KeyRingException($"Version {version} still protects {needed} record{(needed == 1 ? "" : "s")}; run `gatehouse keys rewrap` first, then retire it.");
        }

        var retired = target with { State = KeyVersionState.Retired, RetiredAt = time.GetUtcNow(), Reference = null };
        var result = await store.CommitAsync(new StoreTransaction().If(StoreCondition.Unchanged(StoreKeys.KeyRing, revision)).Put(StoreKeys.KeyRing, CoreJson.Serialize(record.With(retired))), cancellationToken);
        if (!result.Succeeded)
        {
            throw new KeyRingException("The key ring changed while retiring (a rotation at the same moment?); nothing was changed here. Try again.");
        }

        ring.Apply(record.With(retired), result.Revision);
        if (target.Reference is { } reference && ring.Providers.TryGetValue(target.Provider, out var provider))
        {
            provider.DestroyVersion(record.Id, version, reference);
        }

        return retired;
    }

    /// <summary>How many records each master key version protects (a record counts once per version it needs).</summary>
    public static async Task<KeyUsage> CountAsync(IStore store, IReadOnlyList<SealedRecordKind> kinds, CancellationToken cancellationToken)
    {
        var byVersion = new Dictionary<(string, uint), int>();
        var records = 0;
        var unreadable = 0;
        foreach (var kind in kinds)
        {
            var range = await store.ListAsync(kind.Prefix, cancellationToken);
            foreach (var entry in range.Entries)
            {
                IReadOnlyList<byte[]> envelopes;
                try
                {
                    envelopes = kind.Envelopes(entry);
                }
                catch (FormatException)
                {
                    unreadable++;
                    continue;
                }

                if (envelopes.Count == 0)
                {
                    continue;
                }

                records++;
                var seen = new HashSet<(string, uint)>();
                foreach (var envelope in envelopes)
                {
                    if (!EnvelopeCipher.TryReadKeyVersion(envelope, out var id, out var version))
                    {
                        unreadable++;
                    }
                    else if (seen.Add((id, version)))
                    {
                        byVersion[(id, version)] = byVersion.GetValueOrDefault((id, version)) + 1;
                    }
                }
            }
        }

        return new KeyUsage(records, byVersion, unreadable);
    }

    /// <summary>The ring as stored, with its revision; null when there is none.</summary>
    public static async ValueTask<(KeyRingRecord Record, long Revision)?> ReadAsync(IStore store, CancellationToken cancellationToken)
    {
        var entry = await store.GetAsync(StoreKeys.KeyRing, cancellationToken);
        return entry is null ? null : (CoreJson.Deserialize<KeyRingRecord>(entry), entry.ModRevision);
    }

    private static IMasterKeyProvider Provider(IReadOnlyDictionary<string, IMasterKeyProvider> providers, string name) =>
        providers.TryGetValue(name, out var provider)
            ? provider
            : throw new KeyRingException($"No key provider named '{name}' is configured (configured: {string.Join(", ", providers.Keys)}).");
}

/// <summary>What <see cref="KeyRingStore.CountAsync"/> found.</summary>
/// <param name="Records">Records that hold at least one sealed secret.</param>
/// <param name="ByVersion">Records per (ring id, version).</param>
/// <param name="Unreadable">Records or envelopes whose structure could not be read.</param>
public sealed record KeyUsage(int Records, IReadOnlyDictionary<(string RingId, uint Version), int> ByVersion, int Unreadable);

/// <summary>A key ring operation was refused; the message says why and what to do. Nothing was changed.</summary>
public sealed class KeyRingException(string message) : Exception(message);
