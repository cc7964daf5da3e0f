using System.Diagnostics.CodeAnalysis;

namespace Gatehouse.Sites;

/// <summary>
/// An immutable lookup from host names to values, built once when the set of names changes and read on every
/// handshake and request: an exact match wins, otherwise a one-level wildcard (<c>*.example.com</c> matches
/// <c>a.example.com</c>, not <c>example.com</c> or <c>a.b.example.com</c>). Case-insensitive; lookups do not allocate.
/// </summary>
public sealed class HostTable<T>
    where T : class
{
    private readonly Dictionary<string, T> _exact;
    private readonly Dictionary<string, T> _wildcardParents;
    private readonly Dictionary<string, T>.AlternateLookup<ReadOnlySpan<char>> _exactBySpan;
    private readonly Dictionary<string, T>.AlternateLookup<ReadOnlySpan<char>> _wildcardBySpan;

    /// <summary>Builds the table; a later duplicate of a name replaces an earlier one.</summary>
    public HostTable(IEnumerable<KeyValuePair<string, T>> entries)
    {
        _exact = new Dictionary<string, T>(StringComparer.OrdinalIgnoreCase);
        _wildcardParents = new Dictionary<string, T>(StringComparer.OrdinalIgnoreCase);
        foreach (var (host, value) in entries)
        {
            if (HostName.IsWildcard(host))
            {
                _wildcardParents[host[2..]] = value;
            }
            else
            {
                _exact[host] = value;
            }
        }

        _exactBySpan = _exact.GetAlternateLookup<ReadOnlySpan<char>>();
        _wildcardBySpan = _wildcardParents.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>How many names and wildcards the table holds.</summary>
    public int Count => _exact.Count + _wildcardParents.Count;

    /// <summary>Finds the value for <paramref name="host"/>: exact match first, then a one-level wildcard.</summary>
    public bool TryMatch(ReadOnlySpan<char> host, [MaybeNullWhen(false)] out T value)
    {
        if (host.IsEmpty)
        {
            value = null;
            return false;
        }

        if (_exactBySpan.TryGetValue(host, out value))
        {
            return true;
        }

        var dot = host.IndexOf('.');
        if (dot > 0 && dot < host.Length - 1)
        {
            return _wildcardBySpan.TryGetValue(host[(dot + 1)..], out value);
        }

        value = null;
        return false;
    }
}
