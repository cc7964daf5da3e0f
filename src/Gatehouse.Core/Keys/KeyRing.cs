using System.Diagnostics.CodeAnalysis;
using Gatehouse.Storage;

namespace Gatehouse.Keys;

/// <summary>
/// The live key ring of a running process: the versions of <see cref="KeyRingRecord"/> opened through their providers,
/// the active one for new envelopes. <see cref="Apply"/> takes a newer record (a rotation or retirement made by any
/// instance) and swaps the whole state in one write; lookups never lock.
/// </summary>
/// <remarks>
/// Another instance may rotate and seal with the new version before this one has seen the change. A lookup of a
/// version newer than any known calls the reload hook (at most once a second) so that such a record still opens.
/// </remarks>
public sealed class KeyRing : IMasterKeyRing, IDisposable
{
    private static readonly TimeSpan ReloadInterval = TimeSpan.FromSeconds(1);

    private readonly IReadOnlyDictionary<string, IMasterKeyProvider> _providers;
    private readonly Lock _applying = new();
    private readonly TimeProvider _time;
    private volatile State _state;
    private Func<KeyRingRecord?>? _reload;
    private long _lastReload = long.MinValue;
    private int _disposed;

    private KeyRing(IReadOnlyDictionary<string, IMasterKeyProvider> providers, State state, TimeProvider time)
    {
        _providers = providers;
        _state = state;
        _time = time;
    }

    /// <summary>The record the current state was opened from.</summary>
    public KeyRingRecord Record => _state.Record;

    /// <summary>The store revision of <see cref="Record"/> (0 when not known).</summary>
    public long Revision => _state.Revision;

    public IMasterKey Active => _state.Active;

    /// <summary>The providers by name.</summary>
    public IReadOnlyDictionary<string, IMasterKeyProvider> Providers => _providers;

    /// <summary>Opens every version of <paramref name="record"/> that is not retired.</summary>
    /// <exception cref="MasterKeyException">A version's provider is not configured, or cannot open it.</exception>
    public static KeyRing Open(KeyRingRecord record, long revision, IReadOnlyDictionary<string, IMasterKeyProvider> providers, TimeProvider? time = null) =>
        new(providers, OpenState(record, revision, providers, previous: null), time ?? TimeProvider.System);

    /// <summary>Sets how a missing newer version is looked for (a synchronous read of the ring from the store).</summary>
    public void OnMissingVersion(Func<KeyRingRecord?> reload) => _reload = reload;

    public bool TryGet(string id, uint version, [NotNullWhen(true)] out IMasterKey? key)
    {
        var state = _state;
        if (id == state.Record.Id && state.Open.TryGetValue(version, out key))
        {
            return true;
        }

        key = null;
        if (id != state.Record.Id || state.Record.Find(version) is not null || !TryReloadNewer())
        {
            return false;
        }

        return _state.Open.TryGetValue(version, out key);
    }

    public string Describe(string id, uint version)
    {
        var record = _state.Record;
        if (id != record.Id)
        {
            return $"it belongs to master key ring '{id}', and this store's ring is '{record.Id}'";
        }

        return record.Find(version) switch
        {
            null => $"master key version {version} does not exist in key ring '{id}'",
            { State: KeyVersionState.Retired } v => $"master key version {version} was retired{(v.RetiredAt is { } at ? " at " + at.ToString("u", System.Globalization.CultureInfo.InvariantCulture) : "")}",
            _ => $"master key version {version} is not open",
        };
    }

    /// <summary>Takes a newer record: opens new versions, switches the active one, closes retired ones.</summary>
    /// <exception cref="MasterKeyException">A new version cannot be opened; the current state stays.</exception>
    public void Apply(KeyRingRecord record, long revision)
    {
        lock (_applying)
        {
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            var previous = _state;
            if (revision != 0 && revision <= previous.Revision)
            {
                return;
            }

            if (record.Id != previous.Record.Id)
            {
                throw new MasterKeyException($"The store's key ring is now '{record.Id}', not '{previous.Record.Id}'; restart to use another ring.");
            }

            _state = OpenState(record, revision, _providers, previous);
            foreach (var (version, key) in previous.Open)
            {
                if (!_state.Open.ContainsKey(version))
                {
                    key.Dispose();
                }
            }
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            lock (_applying)
            {
                foreach (var key in _state.Open.Values)
                {
                    key.Dispose();
                }
            }
        }
    }

    private bool TryReloadNewer()
    {
        if (_reload is not { } reload)
        {
            return false;
        }

        var now = _time.GetTimestamp();
        var last = Interlocked.Read(ref _lastReload);
        if (last != long.MinValue && _time.GetElapsedTime(last, now) < ReloadInterval || Interlocked.CompareExchange(ref _lastReload, now, last) != last)
        {
            return false;
        }

        try
        {
            if (reload() is { } record)
            {
                Apply(record, revision: 0);
                return true;
            }
        }
        catch (Exception ex) when (ex is MasterKeyException or StoreUnavailableException)
        {
            // The caller reports the version as missing; the next lookup after the interval tries again.
        }

        return false;
    }

    private static State OpenState(KeyRingRecord record, long revision, IReadOnlyDictionary<string, IMasterKeyProvider> providers, State? previous)
    {
        var actives = record.Versions.Count(v => v.State == KeyVersionState.Active);
        if (actives != 1)
        {
            throw new MasterKeyException($"Key ring '{record.Id}' has {actives} active versions; it must have exactly one.");
        }

        var opened = new Dictionary<uint, IMasterKey>();
        try
        {
            foreach (var version in record.Versions)
            {
                if (version.State == KeyVersionState.Retired)
                {
                    continue;
                }

                if (previous is not null && previous.Open.TryGetValue(version.Version, out var known) && previous.Record.Find(version.Version)?.Reference == version.Reference)
                {
                    opened.Add(version.Version, known);
                    continue;
                }

                if (!providers.TryGetValue(version.Provider, out var provider))
                {
                    throw new MasterKeyException(
                        $"Master key version {version.Version} is held by provider '{version.Provider}' ({version.Kind}), which keys.providers does not name. Add it to the configuration, or rewrap and retire version {version.Version} where it is available.");
                }

                if (version.Reference is null)
                {
                    throw new MasterKeyException($"Master key version {version.Version} has no reference in the key ring although it is not retired.");
                }

                opened.Add(version.Version, provider.OpenVersion(record.Id, version.Version, version.Reference));
            }
        }
        catch
        {
            foreach (var (number, key) in opened)
            {
                if (previous is null || !previous.Open.ContainsKey(number))
                {
                    key.Dispose();
                }
            }

            throw;
        }

        return new State(record, revision, opened, opened[record.Active.Version]);
    }

    private sealed record State(KeyRingRecord Record, long Revision, Dictionary<uint, IMasterKey> Open, IMasterKey Active);
}
