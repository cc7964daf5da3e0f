namespace Gatehouse.Keys;

/// <summary>
/// A place where master key versions live: a key file, a passphrase, an HSM token. The key ring records, for every
/// version, the name of the provider that holds it and the provider's reference to it (never key material in
/// plaintext); the provider turns that reference back into a usable <see cref="IMasterKey"/>.
/// </summary>
/// <remarks>
/// Implementations are safe to call concurrently. Errors are <see cref="MasterKeyException"/>s whose message names
/// the cause (wrong PIN, missing token, missing key label, wrong passphrase) and never a secret.
/// </remarks>
public interface IMasterKeyProvider : IDisposable
{
    /// <summary>The name the configuration gives this provider; the key ring records it for each version.</summary>
    string Name { get; }

    /// <summary>What kind of provider this is: <c>software</c>, <c>passphrase</c> or <c>pkcs11</c>.</summary>
    string Kind { get; }

    /// <summary>
    /// The reference of a key that exists before the key ring does and becomes its version 1 (an HSM key created
    /// with the HSM's own tools, found by label), or null when new rings start with <see cref="CreateVersion"/>.
    /// </summary>
    string? BootstrapReference { get; }

    /// <summary>Makes the key material of a new version and returns it with the reference the ring records.</summary>
    /// <param name="ringId">The key ring's id (what envelopes record as the master key id).</param>
    /// <param name="version">The new version number.</param>
    MasterKeyVersion CreateVersion(string ringId, uint version);

    /// <summary>Opens an existing version from the reference <see cref="CreateVersion"/> returned.</summary>
    /// <exception cref="MasterKeyException">The key cannot be found or opened; the message says why.</exception>
    IMasterKey OpenVersion(string ringId, uint version, string reference);

    /// <summary>
    /// Destroys a retired version's key material where the provider holds it outside the ring (an HSM object).
    /// Providers whose reference is the only copy do nothing: the ring forgets the reference.
    /// </summary>
    void DestroyVersion(string ringId, uint version, string reference);
}

/// <summary>A newly created master key version and the reference the key ring records for it.</summary>
public sealed record MasterKeyVersion(IMasterKey Key, string Reference);
