namespace Gatehouse.Keys;

/// <summary>
/// One version of a master key: wraps and unwraps data keys, never exposes itself. Implementations keep the key
/// material where they are told (process memory, an HSM) and are safe to call concurrently.
/// </summary>
public interface IMasterKey : IDisposable
{
    /// <summary>The key ring's id of this key (what the envelope records), 1–64 characters of [A-Za-z0-9._-].</summary>
    string Id { get; }

    /// <summary>The version of <see cref="Id"/> this object holds.</summary>
    uint Version { get; }

    /// <summary>Wraps a data key; <paramref name="associatedData"/> must be presented again to unwrap.</summary>
    byte[] WrapKey(ReadOnlySpan<byte> dataKey, ReadOnlySpan<byte> associatedData);

    /// <summary>Unwraps into <paramref name="dataKey"/>; false when the wrapped key or associated data was altered or
    /// belongs to another key. Never throws for bad input.</summary>
    bool TryUnwrapKey(ReadOnlySpan<byte> wrappedKey, ReadOnlySpan<byte> associatedData, Span<byte> dataKey);
}

/// <summary>The master keys Gatehouse can use: one active version for new writes, any version for reads.</summary>
public interface IMasterKeyRing
{
    /// <summary>The version new envelopes are wrapped with.</summary>
    IMasterKey Active { get; }

    /// <summary>Finds a version that can unwrap; false when the ring does not hold it (unknown or retired).</summary>
    bool TryGet(string id, uint version, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out IMasterKey? key);

    /// <summary>Why <see cref="TryGet"/> has no key for a version, in words for an error message.</summary>
    string Describe(string id, uint version) => $"master key '{id}' version {version} is not in the key ring";
}
