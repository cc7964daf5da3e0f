using System.Globalization;

namespace Gatehouse.Acme;

/// <summary>One <c>Link</c> header entry (RFC 8288): a target and one of its relation types.</summary>
internal readonly record struct AcmeLink(Uri Target, string Relation);

/// <summary>Parsers for the HTTP headers ACME relies on. They never throw: a value they cannot read is absent.</summary>
internal static class AcmeHttpHeaders
{
    // RFC 9110 §5.6.7: recipients accept the IMF-fixdate and the two obsolete forms.
    private static readonly string[] HttpDateFormats =
    [
        "ddd, dd MMM yyyy HH:mm:ss 'GMT'",
        "dddd, dd-MMM-yy HH:mm:ss 'GMT'",
        "ddd MMM d HH:mm:ss yyyy",
        "ddd MMM  d HH:mm:ss yyyy",
    ];

    private static readonly TimeSpan MaxRetryAfter = TimeSpan.FromDays(365);

    /// <summary>
    /// Reads <c>Retry-After</c> (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, as the delay from
    /// <paramref name="now"/> (zero for a date in the past; at most a year).
    /// </summary>
    public static bool TryParseRetryAfter(ReadOnlySpan<char> value, DateTimeOffset now, out TimeSpan delay)
    {
        value = value.Trim();
        delay = TimeSpan.Zero;
        if (value.IsEmpty)
        {
            return false;
        }

        if (char.IsAsciiDigit(value[0]))
        {
            if (!ulong.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds))
            {
                // All digits but too long for a number: further away than anyone should wait.
                if (!value.ContainsAnyExceptInRange('0', '9'))
                {
                    delay = MaxRetryAfter;
                    return true;
                }

                return false;
            }

            delay = seconds >= (ulong)MaxRetryAfter.TotalSeconds ? MaxRetryAfter : TimeSpan.FromSeconds(seconds);
            return true;
        }

        if (!DateTimeOffset.TryParseExact(value, HttpDateFormats, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var date))
        {
            return false;
        }

        var until = date - now;
        delay = until <= TimeSpan.Zero ? TimeSpan.Zero : until > MaxRetryAfter ? MaxRetryAfter : until;
        return true;
    }

    /// <summary>
    /// Reads <c>Link</c> header values (RFC 8288 §3): each may hold several comma-separated links, each with
    /// parameters; <c>rel</c> may list several space-separated relation types. Targets are resolved against
    /// <paramref name="baseUri"/>. Entries it cannot read are skipped.
    /// </summary>
    public static IReadOnlyList<AcmeLink> ParseLinks(IEnumerable<string> values, Uri baseUri)
    {
        var links = new List<AcmeLink>();
        foreach (var value in values)
        {
            var position = 0;
            while (position < value.Length)
            {
                ParseLink(value, ref position, baseUri, links);
            }
        }

        return links;
    }

    /// <summary>The targets of the links with relation <paramref name="relation"/>.</summary>
    public static IReadOnlyList<Uri> Targets(IReadOnlyList<AcmeLink> links, string relation) =>
        links.Where(l => string.Equals(l.Relation, relation, StringComparison.OrdinalIgnoreCase)).Select(l => l.Target).ToArray();

    // link-value = "<" URI-Reference ">" *( OWS ";" OWS link-param ); position ends after the next top-level comma.
    private static void ParseLink(string value, ref int position, Uri baseUri, List<AcmeLink> links)
    {
        SkipWhitespace(value, ref position);
        if (position >= value.Length)
        {
            return;
        }

        if (value[position] != '<')
        {
            SkipToNextLink(value, ref position);
            return;
        }

        var close = value.IndexOf('>', position + 1);
        if (close < 0)
        {
            position = value.Length;
            return;
        }

        var target = value[(position + 1)..close].Trim();
        position = close + 1;
        string? relations = null;
        while (true)
        {
            SkipWhitespace(value, ref position);
            if (position >= value.Length || value[position] == ',')
            {
                position++;
                break;
            }

            if (value[position] != ';')
            {
                SkipToNextLink(value, ref position);
                break;
            }

            position++;
            var (name, parameterValue) = ReadParameter(value, ref position);
            if (relations is null && string.Equals(name, "rel", StringComparison.OrdinalIgnoreCase))
            {
                relations = parameterValue;
            }
        }

        if (relations is null || !Uri.TryCreate(baseUri, target, out var resolved))
        {
            return;
        }

        foreach (var relation in relations.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            links.Add(new AcmeLink(resolved, relation));
        }
    }

    // link-param = token BWS [ "=" BWS ( token / quoted-string ) ]
    private static (string Name, string Value) ReadParameter(string value, ref int position)
    {
        SkipWhitespace(value, ref position);
        var start = position;
        while (position < value.Length && value[position] is not ('=' or ';' or ',') && !char.IsWhiteSpace(value[position]))
        {
            position++;
        }

        var name = value[start..position];
        SkipWhitespace(value, ref position);
        if (position >= value.Length || value[position] != '=')
        {
            return (name, "");
        }

        position++;
        SkipWhitespace(value, ref position);
        if (position < value.Length && value[position] == '"')
        {
            position++;
            var text = new System.Text.StringBuilder();
            while (position < value.Length && value[position] != '"')
            {
                if (value[position] == '\\' && position + 1 < value.Length)
                {
                    position++;
                }

                text.Append(value[position++]);
            }

            position++;
            return (name, text.ToString());
        }

        start = position;
        while (position < value.Length && value[position] is not (';' or ',') && !char.IsWhiteSpace(value[position]))
        {
            position++;
        }

        return (name, value[start..position]);
    }

    private static void SkipWhitespace(string value, ref int position)
    {
        while (position < value.Length && char.IsWhiteSpace(value[position]))
        {
            position++;
        }
    }

    private static void SkipToNextLink(string value, ref int position)
    {
        var inQuotes = false;
        while (position < value.Length)
        {
            var c = value[position++];
            if (c == '"')
            {
                inQuotes = !inQuotes;
            }
            else if (c == ',' && !inQuotes)
            {
                return;
            }
        }
    }
}
