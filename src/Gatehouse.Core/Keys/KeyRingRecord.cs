namespace Gatehouse.Keys;

/// <summary>
/// The key ring as the store holds it (<c>/gatehouse/v1/keys/ring</c>): which master key versions exist, which one
/// new envelopes use, and where each version's key lives. It holds references (a label in an HSM, a version key
/// wrapped by a key file, a passphrase's salt and KDF parameters), never a usable key.
/// </summary>
public sealed record KeyRingRecord
{
    /// <summary>The ring's id: what every envelope records as its master key id.</summary>
    public required string Id { get; init; }

    /// <summary>Every version ever created, oldest first.</summary>
    public required IReadOnlyList<KeyVersionRecord> Versions { get; init; }

    /// <summary>The one active version.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public KeyVersionRecord Active => Versions.Single(v => v.State == KeyVersionState.Active);

    /// <summary>The version numbered <paramref name="version"/>, or null.</summary>
    public KeyVersionRecord? Find(uint version) => Versions.FirstOrDefault(v => v.Version == version);

    /// <summary>A copy with one version replaced.</summary>
    public KeyRingRecord With(KeyVersionRecord changed) =>
        this with { Versions = [.. Versions.Select(v => v.Version == changed.Version ? changed : v)] };
}

/// <summary>One master key version.</summary>
public sealed record KeyVersionRecord
{
    public required uint Version { get; init; }

    public required KeyVersionState State { get; init; }

    /// <summary>The name of the provider (in the configuration) that holds this version.</summary>
    public required string Provider { get; init; }

    /// <summary>The provider's kind when the version was made: software, passphrase or pkcs11.</summary>
    public required string Kind { get; init; }

    public required DateTimeOffset Created { get; init; }

    /// <summary>When the version was retired.</summary>
    public DateTimeOffset? RetiredAt { get; init; }

    /// <summary>The provider's reference to the key; cleared when the version is retired.</summary>
    public string? Reference { get; init; }
}

/// <summary>Where a master key version stands.</summary>
public enum KeyVersionState
{
    /// <summary>Wraps the data keys of new envelopes (exactly one version is active).</summary>
    Active,

    /// <summary>Unwraps what it wrapped before a rotation, wraps nothing new.</summary>
    DecryptOnly,

    /// <summary>Gone: nothing it wrapped can be opened any more.</summary>
    Retired,
}
