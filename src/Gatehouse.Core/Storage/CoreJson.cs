using System.Text.Json;
using System.Text.Json.Serialization;
using Gatehouse.Certificates;
using Gatehouse.Sites;

namespace Gatehouse.Storage;

/// <summary>The JSON shapes of store values (source-generated, camelCase, enums as strings).</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    UseStringEnumConverter = true,
    RespectRequiredConstructorParameters = true)]
[JsonSerializable(typeof(SiteDefinition))]
[JsonSerializable(typeof(CertificateRecord))]
[JsonSerializable(typeof(LocalCaRecord))]
[JsonSerializable(typeof(AcmeAccountRecord))]
[JsonSerializable(typeof(Gatehouse.Keys.KeyRingRecord))]
[JsonSerializable(typeof(Gatehouse.Challenges.TlsAlpnChallengeRecord))]
internal sealed partial class CoreJson : JsonSerializerContext
{
    public static byte[] Serialize<T>(T value) => JsonSerializer.SerializeToUtf8Bytes(value, (System.Text.Json.Serialization.Metadata.JsonTypeInfo<T>)Default.GetTypeInfo(typeof(T))!);

    /// <summary>Reads a value; throws <see cref="FormatException"/> naming the key when it is not one.</summary>
    public static T Deserialize<T>(StoreEntry entry)
        where T : class
    {
        try
        {
            return JsonSerializer.Deserialize(entry.Value.Span, (System.Text.Json.Serialization.Metadata.JsonTypeInfo<T>)Default.GetTypeInfo(typeof(T))!)
                ?? throw new FormatException($"'{entry.Key}' holds null");
        }
        catch (JsonException ex)
        {
            throw new FormatException($"'{entry.Key}' is not a valid {typeof(T).Name}: {ex.Message}", ex);
        }
    }
}
