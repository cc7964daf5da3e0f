using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gatehouse.Keys;

/// <summary>
/// The software master key's file: created with mode 0600 on first start, refused when anyone but the owner can
/// read or write it. JSON: <c>{"format":1,"id":"…","version":1,"algorithm":"AES-256-GCM","key":"base64"}</c>.
/// </summary>
public static partial class MasterKeyFile
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Loads the key at <paramref name="path"/>, creating it when the file does not exist.</summary>
    /// <exception cref="MasterKeyException">The file is unreadable, malformed, or its mode is wider than 0600.</exception>
    public static SoftwareMasterKey LoadOrCreate(string path)
    {
        if (!File.Exists(path))
        {
            TryCreate(path);
        }

        return Load(path);
    }

    private static void TryCreate(string path)
    {
        var key = RandomNumberGenerator.GetBytes(SoftwareMasterKey.KeySize);
        var model = new KeyFileModel(1, "local-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4)), 1, "AES-256-GCM", Convert.ToBase64String(key));
        var bytes = JsonSerializer.SerializeToUtf8Bytes(model, KeyFileJson.Default.KeyFileModel);
        try
        {
            // CreateNew with the mode set at creation: the key is never readable by others, not even for a moment,
            // and two processes starting together cannot both create one.
            using var stream = new FileStream(path, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = OwnerOnly,
                Options = FileOptions.WriteThrough,
            });
            stream.Write(bytes);
            stream.Flush(flushToDisk: true);
        }
        catch (IOException) when (File.Exists(path))
        {
            // Someone else created it first: use theirs.
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new MasterKeyException($"Cannot create the master key file '{path}': {ex.Message}", ex);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    private static SoftwareMasterKey Load(string path)
    {
        if (!OperatingSystem.IsWindows())
        {
            var mode = File.GetUnixFileMode(path);
            if ((mode & ~OwnerOnly) != 0)
            {
                throw new MasterKeyException(
                    $"The master key file '{path}' has mode {Convert.ToString((int)mode, 8).PadLeft(4, '0')}; it must be readable by its owner only. Run: chmod 600 '{path}'.");
            }
        }

        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new MasterKeyException($"Cannot read the master key file '{path}': {ex.Message}", ex);
        }

        byte[]? key = null;
        try
        {
            var model = JsonSerializer.Deserialize(bytes, KeyFileJson.Default.KeyFileModel);
            if (model is not { Format: 1, Algorithm: "AES-256-GCM" } || string.IsNullOrEmpty(model.Id) || string.IsNullOrEmpty(model.Key))
            {
                throw new MasterKeyException($"The master key file '{path}' is not a Gatehouse format-1 AES-256-GCM key file.");
            }

            key = Convert.FromBase64String(model.Key);
            return new SoftwareMasterKey(model.Id, model.Version, key);
        }
        catch (Exception ex) when (ex is JsonException or FormatException or ArgumentException)
        {
            // Never include the file's content: it is the key.
            throw new MasterKeyException($"The master key file '{path}' is malformed ({ex.GetType().Name}).", null);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
            if (key is not null)
            {
                CryptographicOperations.ZeroMemory(key);
            }
        }
    }

    internal sealed record KeyFileModel(int Format, string Id, uint Version, string Algorithm, string Key);

    [JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
    [JsonSerializable(typeof(KeyFileModel))]
    internal sealed partial class KeyFileJson : JsonSerializerContext;
}

/// <summary>A master key cannot be loaded or used; the message names the cause, never key material.</summary>
public sealed class MasterKeyException(string message, Exception? innerException = null) : Exception(message, innerException);
