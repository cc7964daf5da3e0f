using System.Diagnostics.CodeAnalysis;

namespace Gatehouse.Keys;

/// <summary>An in-memory key ring: the versions it was given, the newest of them active.</summary>
public sealed class MasterKeyRing : IMasterKeyRing, IDisposable
{
    private readonly Dictionary<(string Id, uint Version), IMasterKey> _keys = [];

    public MasterKeyRing(IEnumerable<IMasterKey> keys, IMasterKey active)
    {
        foreach (var key in keys)
        {
            _keys.Add((key.Id, key.Version), key);
        }

        _keys.TryAdd((active.Id, active.Version), active);
        Active = active;
    }

    public IMasterKey Active { get; }

    public bool TryGet(string id, uint version, [NotNullWhen(true)] out IMasterKey? key) => _keys.TryGetValue((id, version), out key);

    public void Dispose()
    {
        foreach (var key in _keys.Values)
        {
            key.Dispose();
        }
    }
}
