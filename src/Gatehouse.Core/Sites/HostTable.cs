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
        : this(new Dictionary<string, T>(StringComparer.OrdinalIgnoreCase), new Dictionary<string, T>(StringComparer.OrdinalIgnoreCase))
    {
        foreach (var (host, value) in entries)
        {
            var (table, name) = Slot(host);
            if (table.TryGetValue(name, out var earlier) && !ReferenceEquals(earlier, value))
            {
                HasConflicts = true;
            }

            table[name] = value;
        }
    }

    private HostTable(Dictionary<string, T> exact, Dictionary<string, T> wildcardParents)
    {
        _exact = exact;
        _wildcardParents = wildcardParents;
        _exactBySpan = _exact.GetAlternateLookup<ReadOnlySpan<char>>();
        _wildcardBySpan = _wildcardParents.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>Whether two values claimed one name when the table was built (the later one holds it). Such a table
    /// cannot be changed with <see cref="With"/>: which claim takes over a released name depends on all of them.</summary>
    public bool HasConflicts { get; private init; }

    /// <summary>
    /// A copy of this table with the names of <paramref name="removed"/> released and those of <paramref name="added"/>
    /// claimed, in time proportional to the table's size for the copy (a memory copy) plus the changes; the result
    /// equals a table built from the entries after the change. Null when it cannot be: this table has conflicts, a
    /// removed name is not held by the value given, or an added name is held by another value.
    /// </summary>
    public HostTable<T>? With(IEnumerable<KeyValuePair<string, T>> removed, IEnumerable<KeyValuePair<string, T>> added)
    {
        if (HasConflicts)
        {
            return null;
        }

        var changed = new HostTable<T>(new Dictionary<string, T>(_exact, _exact.Comparer), new Dictionary<string, T>(_wildcardParents, _wildcardParents.Comparer));
        foreach (var (host, value) in removed)
        {
            var (table, name) = changed.Slot(host);
            if (!table.TryGetValue(name, out var holder) || !ReferenceEquals(holder, value))
            {
                return null;
            }

            table.Remove(name);
        }

        foreach (var (host, value) in added)
        {
            var (table, name) = changed.Slot(host);
            if (!table.TryAdd(name, value) && !ReferenceEquals(table[name], value))
            {
                return null;
            }
        }

        return changed;
    }

    private (Dictionary<string, T> Table, string Name) Slot(string host) =>
        HostName.IsWildcard(host) ? (_wildcardParents, host[2..]) : (_exact, host);

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
