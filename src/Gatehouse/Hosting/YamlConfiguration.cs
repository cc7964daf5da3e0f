using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Gatehouse.Hosting;

/// <summary>
/// Flattens a YAML document into ASP.NET configuration keys: mappings become <c>a:b</c>, sequences <c>a:0</c>.
/// </summary>
internal static class YamlConfiguration
{
    /// <summary>Reads <paramref name="text"/>; throws <see cref="FormatException"/> with line and column on bad YAML.</summary>
    public static Dictionary<string, string?> Flatten(string text)
    {
        var data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException ex)
        {
            throw new FormatException($"line {ex.Start.Line}, column {ex.Start.Column}: {ex.InnerException?.Message ?? ex.Message}", ex);
        }

        if (stream.Documents.Count == 0)
        {
            return data;
        }

        if (stream.Documents.Count > 1)
        {
            throw new FormatException("the file has more than one YAML document");
        }

        if (stream.Documents[0].RootNode is not YamlMappingNode root)
        {
            throw new FormatException("the top level must be a mapping of keys to values");
        }

        Visit(root, null, data);
        return data;
    }

    private static void Visit(YamlNode node, string? path, Dictionary<string, string?> data)
    {
        switch (node)
        {
            case YamlMappingNode mapping:
                // Configuration keys are case-insensitive: 'Sites' and 'sites' would silently merge.
                var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
                foreach (var (keyNode, value) in mapping.Children)
                {
                    var key = (keyNode as YamlScalarNode)?.Value
                        ?? throw new FormatException($"line {keyNode.Start.Line}: keys must be plain scalars");
                    var child = path is null ? key : $"{path}:{key}";
                    if (!seen.Add(key) || key.Contains(':', StringComparison.Ordinal))
                    {
                        throw new FormatException($"line {keyNode.Start.Line}: '{child}' is given twice or is not a valid key");
                    }

                    Visit(value, child, data);
                }

                if (mapping.Children.Count == 0 && path is not null)
                {
                    data[path] = null;
                }

                break;
            case YamlSequenceNode sequence:
                for (var i = 0; i < sequence.Children.Count; i++)
                {
                    Visit(sequence.Children[i], $"{path}:{i}", data);
                }

                if (sequence.Children.Count == 0 && path is not null)
                {
                    data[path] = null;
                }

                break;
            case YamlScalarNode scalar:
                var isNull = scalar.Style == YamlDotNet.Core.ScalarStyle.Plain && scalar.Value is null or "" or "~" or "null";
                data[path!] = isNull ? null : scalar.Value;
                break;
            default:
                throw new FormatException($"line {node.Start.Line}: unsupported YAML node");
        }
    }
}
