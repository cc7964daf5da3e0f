using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Gatehouse.Sites;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;

namespace Gatehouse.Edge.Routing;

/// <summary>The YARP cluster settings that come from a site's <see cref="BackendHealthCheck"/> and
/// <see cref="BackendTls"/>. Sites with the defaults share one instance, so 100,000 of them cost nothing more.</summary>
internal static class BackendHealth
{
    private static readonly BackendHealthCheck Defaults = new();

    private static readonly HealthCheckConfig DefaultConfig = Build(Defaults);

    /// <summary>Active checks when a path is set; passive detection (<see cref="BackendFailurePolicy"/>) unless turned
    /// off.</summary>
    public static HealthCheckConfig ConfigOf(BackendHealthCheck? check) => check is null || check == Defaults ? DefaultConfig : Build(check);

    /// <summary>The cluster metadata: the active policy's thresholds, and a fingerprint of the backend TLS settings
    /// for a re-encrypt site (<see cref="BackendHttpClientFactory"/>); null when there is neither.</summary>
    public static IReadOnlyDictionary<string, string>? MetadataOf(SiteDefinition site)
    {
        Dictionary<string, string>? metadata = null;
        if (site.HealthCheck is { Path: not null } check)
        {
            metadata = new(StringComparer.Ordinal)
            {
                [BackendHealthPolicy.UnhealthyAfterKey] = check.UnhealthyAfter.ToString(CultureInfo.InvariantCulture),
                [BackendHealthPolicy.HealthyAfterKey] = check.HealthyAfter.ToString(CultureInfo.InvariantCulture),
            };
        }

        if (site.Mode == SiteMode.Reencrypt)
        {
            metadata ??= new(StringComparer.Ordinal);
            metadata[BackendHttpClientFactory.TlsMetadataKey] = Fingerprint(site.BackendTls);
        }

        return metadata;
    }

    /// <summary>The YARP destination id of a site's <paramref name="index"/>th backend. A re-encrypt site's ids carry
    /// its TLS fingerprint: a backend that failed verification (and was taken out) starts afresh, with no health
    /// state, when the settings change.</summary>
    public static string DestinationId(int index, IReadOnlyDictionary<string, string>? metadata) =>
        metadata is not null && metadata.TryGetValue(BackendHttpClientFactory.TlsMetadataKey, out var fingerprint)
            ? $"backend-{index.ToString(CultureInfo.InvariantCulture)}-{fingerprint[..12]}"
            : $"backend-{index.ToString(CultureInfo.InvariantCulture)}";

    public static bool SameMetadata(IReadOnlyDictionary<string, string>? a, IReadOnlyDictionary<string, string>? b)
    {
        if (a is null || b is null)
        {
            return a is null && b is null;
        }

        return a.Count == b.Count && a.All(pair => b.TryGetValue(pair.Key, out var value) && value == pair.Value);
    }

    private static string Fingerprint(BackendTls? tls)
    {
        // Length-prefixed fields, so no two settings hash alike by moving text between fields.
        var text = new StringBuilder();
        foreach (var field in new[] { tls?.CaPem, tls?.ServerName, tls?.Sni, tls?.ClientCertificatePem, tls?.SealedClientKey is { } key ? Convert.ToBase64String(key) : null })
        {
            text.Append(field is null ? "-1" : field.Length.ToString(CultureInfo.InvariantCulture)).Append(':').Append(field).Append(';');
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    private static HealthCheckConfig Build(BackendHealthCheck check)
    {
        string? path = check.Path;
        string? query = null;
        if (path?.IndexOf('?', StringComparison.Ordinal) is int mark and >= 0)
        {
            query = path[mark..];
            path = path[..mark];
        }

        return new HealthCheckConfig
        {
            // YARP's default (HealthyOrPanic) would send requests to backends known to be down once all are; the
            // client gets 503 instead.
            AvailableDestinationsPolicy = HealthCheckConstants.AvailableDestinations.HealthyAndUnknown,
            Active = check.Path is null ? null : new ActiveHealthCheckConfig
            {
                Enabled = true,
                Interval = check.Interval,
                Timeout = check.Timeout,
                Policy = BackendHealthPolicy.PolicyName,
                Path = path,
                Query = query,
            },
            Passive = new PassiveHealthCheckConfig
            {
                Enabled = check.Passive,
                Policy = BackendFailurePolicy.PolicyName,
                ReactivationPeriod = check.ReactivateAfter,
            },
        };
    }
}
