using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace Gatehouse.Edge.Routing;

/// <summary>
/// The active health policy of sites with <c>healthCheck: {path: ...}</c>: a backend goes out after
/// <c>unhealthyAfter</c> consecutive failed probes (no answer in time, a transport or TLS failure, or a status other
/// than 2xx) and comes back after <c>healthyAfter</c> consecutive passed ones. YARP's ConsecutiveFailures policy has
/// only the first threshold. The thresholds travel in the cluster's metadata; a change of them resets nothing.
/// </summary>
internal sealed class BackendHealthPolicy(IDestinationHealthUpdater updater, ILogger<BackendHealthPolicy> logger) : IActiveHealthCheckPolicy
{
    public const string PolicyName = "Gatehouse";
    public const string UnhealthyAfterKey = "gatehouse.unhealthyAfter";
    public const string HealthyAfterKey = "gatehouse.healthyAfter";

    private readonly ConditionalWeakTable<DestinationState, Streak> _streaks = new();

    public string Name => PolicyName;

    public void ProbingCompleted(ClusterState cluster, IReadOnlyList<DestinationProbingResult> probingResults)
    {
        if (probingResults.Count == 0)
        {
            return;
        }

        var metadata = cluster.Model.Config.Metadata;
        var unhealthyAfter = Threshold(metadata, UnhealthyAfterKey, 2);
        var healthyAfter = Threshold(metadata, HealthyAfterKey, 1);
        var updates = new List<NewActiveDestinationHealth>(probingResults.Count);
        foreach (var result in probingResults)
        {
            var destination = result.Destination;
            var streak = _streaks.GetValue(destination, static _ => new Streak());
            var current = destination.Health.Active;
            var next = current;
            lock (streak)
            {
                if (result.Response is { IsSuccessStatusCode: true })
                {
                    streak.Failures = 0;
                    streak.Successes++;
                    if (current != DestinationHealth.Healthy && streak.Successes >= healthyAfter)
                    {
                        next = DestinationHealth.Healthy;
                        if (current == DestinationHealth.Unhealthy)
                        {
                            BackendLog.BackendHealthy(logger, cluster.ClusterId, destination.Model.Config.Address, streak.Successes);
                        }
                    }
                }
                else
                {
                    streak.Successes = 0;
                    streak.Failures++;
                    if (current != DestinationHealth.Unhealthy && streak.Failures >= unhealthyAfter)
                    {
                        next = DestinationHealth.Unhealthy;
                        var reason = result.Response is { } response
                            ? $"status {(int)response.StatusCode}"
                            : result.Exception?.Message ?? "no answer";
                        BackendLog.BackendUnhealthy(logger, cluster.ClusterId, destination.Model.Config.Address, streak.Failures, reason);
                    }
                }
            }

            updates.Add(new NewActiveDestinationHealth(destination, next));
        }

        updater.SetActive(cluster, updates);
    }

    private static int Threshold(IReadOnlyDictionary<string, string>? metadata, string key, int fallback) =>
        metadata is not null && metadata.TryGetValue(key, out var text) && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value > 0
            ? value
            : fallback;

    private sealed class Streak
    {
        public int Failures;
        public int Successes;
    }
}
