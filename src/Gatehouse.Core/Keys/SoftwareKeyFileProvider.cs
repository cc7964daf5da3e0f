using System.Security.Cryptography;
using System.Text;

namespace Gatehouse.Keys;

/// <summary>
/// Master key versions held in software under one key file (see <see cref="MasterKeyFile"/>): version 1 of a ring
/// that starts here is the file's key itself; every rotation makes a random AES-256 key and records it in the ring
/// wrapped by the file's key (AES-256-GCM, bound to the ring id and version). Whoever holds the file and the store
/// holds every version, so retiring a version here stops its use but cannot shred it; a leaked file is answered by
/// moving to a new provider (rotate to it, rewrap, retire the old versions).
/// </summary>
public sealed class SoftwareKeyFileProvider : IMasterKeyProvider
{
    /// <summary>The reference of the version that is the file's key itself.</summary>
    public const string FileReference = "file";

    private const string WrappedPrefix = "aes256gcm:";

    private readonly SoftwareMasterKey _fileKey;

    private SoftwareKeyFileProvider(string name, string path, SoftwareMasterKey fileKey)
    {
        Name = name;
        FilePath = path;
        _fileKey = fileKey;
    }

    public string Name { get; }

    public string Kind => "software";

    /// <summary>The key file.</summary>
    public string FilePath { get; }

    /// <summary>The id written in the key file; a ring that starts with this provider takes it as its id, so that
    /// envelopes written before the ring existed stay readable.</summary>
    public string FileKeyId => _fileKey.Id;

    public string? BootstrapReference => FileReference;

    /// <summary>Loads the key file at <paramref name="path"/>, creating it (mode 0600) when it does not exist.</summary>
    /// <exception cref="MasterKeyException">The file cannot be read or created, is malformed, or is readable by others.</exception>
    public static SoftwareKeyFileProvider OpenOrCreate(string name, string path) => new(name, path, MasterKeyFile.LoadOrCreate(path));

    public MasterKeyVersion CreateVersion(string ringId, uint version)
    {
        Span<byte> key = stackalloc byte[SoftwareMasterKey.KeySize];
        RandomNumberGenerator.Fill(key);
        try
        {
            var wrapped = _fileKey.WrapKey(key, AssociatedData(ringId, version));
            return new MasterKeyVersion(new SoftwareMasterKey(ringId, version, key), WrappedPrefix + Convert.ToBase64String(wrapped));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    public IMasterKey OpenVersion(string ringId, uint version, string reference)
    {
        if (reference == FileReference)
        {
            return new AliasedMasterKey(_fileKey, ringId, version);
        }

        byte[] wrapped;
        try
        {
            wrapped = reference.StartsWith(WrappedPrefix, StringComparison.Ordinal) ? Convert.FromBase64String(reference[WrappedPrefix.Length..]) : [];
        }
        catch (FormatException)
        {
            wrapped = [];
        }

        Span<byte> key = stackalloc byte[SoftwareMasterKey.KeySize];
        try
        {
            if (wrapped.Length == 0)
            {
                throw new MasterKeyException($"The key ring's reference for master key version {version} is not one provider '{Name}' (software) wrote.");
            }

            if (!_fileKey.TryUnwrapKey(wrapped, AssociatedData(ringId, version), key))
            {
                throw new MasterKeyException(
                    $"The key file '{FilePath}' does not open master key version {version} of key ring '{ringId}': this is not the key file that version was made with.");
            }

            return new SoftwareMasterKey(ringId, version, key);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    public void DestroyVersion(string ringId, uint version, string reference)
    {
        // The reference in the ring is the only copy; the ring forgets it.
    }

    public void Dispose() => _fileKey.Dispose();

    private static byte[] AssociatedData(string ringId, uint version) =>
        Encoding.ASCII.GetBytes($"gatehouse-master-version-v1|{ringId}|{version}");

    /// <summary>The file's own key, presented under the ring's id and a version; disposing it leaves the file key.</summary>
    private sealed class AliasedMasterKey(IMasterKey inner, string id, uint version) : IMasterKey
    {
        public string Id => id;

        public uint Version => version;

        public byte[] WrapKey(ReadOnlySpan<byte> dataKey, ReadOnlySpan<byte> associatedData) => inner.WrapKey(dataKey, associatedData);

        public bool TryUnwrapKey(ReadOnlySpan<byte> wrappedKey, ReadOnlySpan<byte> associatedData, Span<byte> dataKey) =>
            inner.TryUnwrapKey(wrappedKey, associatedData, dataKey);

        public void Dispose()
        {
        }
    }
}
