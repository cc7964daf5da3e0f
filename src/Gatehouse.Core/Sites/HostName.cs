using System.Diagnostics.CodeAnalysis;
using System.Net;

namespace Gatehouse.Sites;

/// <summary>
/// Host names as sites claim them: RFC 1123 names (letters, digits, hyphens; labels of 1–63 characters, at most
/// 253 characters in all), lower-cased, with a wildcard only as the whole leftmost label (<c>*.example.com</c>).
/// Internationalized names are given in their ASCII (xn--) form.
/// </summary>
public static class HostName
{
    public const int MaxLength = 253;
    public const int MaxLabelLength = 63;

    /// <summary>Validates and normalizes <paramref name="value"/>; on failure <paramref name="error"/> says why.</summary>
    public static bool TryNormalize(string? value, [NotNullWhen(true)] out string? normalized, [NotNullWhen(false)] out string? error)
    {
        normalized = null;
        if (string.IsNullOrEmpty(value))
        {
            error = "a host name cannot be empty";
            return false;
        }

        if (value.Length > MaxLength)
        {
            error = $"'{Shorten(value)}' is longer than {MaxLength} characters";
            return false;
        }

        if (value.EndsWith('.'))
        {
            error = $"'{value}' ends with a dot; give the name without it";
            return false;
        }

        if (IPAddress.TryParse(value, out _))
        {
            error = $"'{value}' is an IP address, not a host name";
            return false;
        }

        var labels = value.Split('.');
        for (var i = 0; i < labels.Length; i++)
        {
            var label = labels[i];
            if (label == "*")
            {
                if (i != 0)
                {
                    error = $"'{value}' has a wildcard that is not the leftmost label";
                    return false;
                }

                if (labels.Length < 3)
                {
                    error = $"'{value}' is a wildcard over a top-level domain; a wildcard needs at least two labels after it";
                    return false;
                }

                continue;
            }

            if (!TryValidateLabel(label, out var reason))
            {
                error = $"'{value}' is not a valid host name: {reason}";
                return false;
            }
        }

        if (labels.Length > 1 && labels[^1].All(char.IsAsciiDigit))
        {
            error = $"'{value}' is not a valid host name: the top-level label is all digits";
            return false;
        }

        normalized = value.ToLowerInvariant();
        error = null;
        return true;
    }

    /// <summary>Whether <paramref name="host"/> is a wildcard pattern.</summary>
    public static bool IsWildcard(string host) => host.StartsWith("*.", StringComparison.Ordinal);

    private static bool TryValidateLabel(string label, [NotNullWhen(false)] out string? reason)
    {
        if (label.Length == 0)
        {
            reason = "it has an empty label";
            return false;
        }

        if (label.Length > MaxLabelLength)
        {
            reason = $"the label '{Shorten(label)}' is longer than {MaxLabelLength} characters";
            return false;
        }

        if (label[0] == '-' || label[^1] == '-')
        {
            reason = $"the label '{label}' starts or ends with a hyphen";
            return false;
        }

        foreach (var c in label)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c != '-')
            {
                reason = c == '*'
                    ? "a wildcard must be the whole leftmost label"
                    : c > 127
                        ? $"'{c}' is not ASCII; give internationalized names in their xn-- form"
                        : $"'{c}' is not allowed (letters, digits and hyphens only)";
                return false;
            }
        }

        reason = null;
        return true;
    }

    private static string Shorten(string s) => s.Length > 40 ? string.Concat(s.AsSpan(0, 40), "…") : s;
}
