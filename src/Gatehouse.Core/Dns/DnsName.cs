using System.Globalization;
using System.Text;

namespace Gatehouse.Dns;

/// <summary>
/// Domain names as text: absolute, with a final dot, compared case-insensitively (RFC 4343). Labels are the
/// characters between dots; a label byte outside printable ASCII, a dot or a backslash inside a label is shown as
/// <c>\DDD</c> (RFC 1035 §5.1) when read from the wire and refused when written.
/// </summary>
internal static class DnsName
{
    /// <summary>RFC 1035 §2.3.4: a name is at most 255 octets on the wire, a label at most 63.</summary>
    public const int MaxWireLength = 255;

    public const int MaxLabelLength = 63;

    public const string Root = ".";

    /// <summary>Adds the final dot; checks label and name lengths and characters.</summary>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a domain name this code can write.</exception>
    public static string Normalize(string name, string? parameterName = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name, parameterName);
        var absolute = name.EndsWith('.') ? name : name + ".";
        if (absolute == Root)
        {
            return Root;
        }

        var wireLength = 1;
        foreach (var label in absolute[..^1].Split('.'))
        {
            if (label.Length is 0 or > MaxLabelLength)
            {
                throw new ArgumentException($"'{name}' is not a domain name: labels are 1 to {MaxLabelLength} characters", parameterName);
            }

            foreach (var c in label)
            {
                if (c is <= ' ' or > '~' or '\\')
                {
                    throw new ArgumentException($"'{name}' is not a domain name: only printable ASCII (IDNs in their xn-- form)", parameterName);
                }
            }

            wireLength += label.Length + 1;
        }

        return wireLength <= MaxWireLength
            ? absolute
            : throw new ArgumentException($"'{name}' is longer than {MaxWireLength} octets", parameterName);
    }

    public static bool Equal(string a, string b) => string.Equals(a, b, StringComparison.OrdinalIgnoreCase);

    /// <summary>True when <paramref name="name"/> is <paramref name="zone"/> or below it (both normalised).</summary>
    public static bool IsAtOrBelow(string name, string zone) =>
        zone == Root
        || Equal(name, zone)
        || (name.Length > zone.Length && name[^(zone.Length + 1)] == '.' && name.EndsWith(zone, StringComparison.OrdinalIgnoreCase));

    /// <summary>The name without its first label; the root for a single-label name.</summary>
    public static string Parent(string name)
    {
        var dot = name.IndexOf('.', StringComparison.Ordinal);
        return dot < 0 || dot == name.Length - 1 ? Root : name[(dot + 1)..];
    }

    /// <summary>Writes a normalised name uncompressed; <paramref name="lowercase"/> gives the canonical form (RFC 4034
    /// §6.2) that TSIG digests use.</summary>
    public static void Write(DnsWriter writer, string name, bool lowercase = false)
    {
        if (name != Root)
        {
            foreach (var label in name.AsSpan(0, name.Length - 1).Split('.'))
            {
                var text = name.AsSpan(label);
                writer.WriteByte((byte)text.Length);
                foreach (var c in text)
                {
                    writer.WriteByte((byte)(lowercase ? char.ToLowerInvariant(c) : c));
                }
            }
        }

        writer.WriteByte(0);
    }

    /// <summary>
    /// Reads a name at <paramref name="offset"/>, following compression pointers (RFC 1035 §4.1.4), and moves
    /// <paramref name="offset"/> past it. A pointer must point strictly backwards, so a loop of pointers cannot be
    /// followed forever; names longer than 255 octets and the reserved label types are refused.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> message, ref int offset, out string name)
    {
        name = Root;
        var builder = new StringBuilder();
        var position = offset;
        var end = -1;
        var wireLength = 1;
        while (true)
        {
            if (position >= message.Length)
            {
                return false;
            }

            var length = message[position];
            switch (length & 0xC0)
            {
                case 0xC0:
                    if (position + 1 >= message.Length)
                    {
                        return false;
                    }

                    var target = ((length & 0x3F) << 8) | message[position + 1];
                    if (target >= position)
                    {
                        return false;
                    }

                    if (end < 0)
                    {
                        end = position + 2;
                    }

                    position = target;
                    continue;
                case 0x00:
                    break;
                default:
                    return false; // 0x40 and 0x80: extended and reserved label types (RFC 6891 §5)
            }

            if (length == 0)
            {
                offset = end < 0 ? position + 1 : end;
                name = builder.Length == 0 ? Root : builder.ToString();
                return true;
            }

            wireLength += length + 1;
            if (wireLength > MaxWireLength || position + 1 + length > message.Length)
            {
                return false;
            }

            foreach (var b in message.Slice(position + 1, length))
            {
                if (b is > (byte)' ' and <= (byte)'~' and not (byte)'.' and not (byte)'\\')
                {
                    builder.Append((char)b);
                }
                else
                {
                    builder.Append(CultureInfo.InvariantCulture, $"\\{b:D3}");
                }
            }

            builder.Append('.');
            position += 1 + length;
        }
    }
}
