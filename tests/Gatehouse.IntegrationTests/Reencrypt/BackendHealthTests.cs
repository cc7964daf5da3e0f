using System.Text.Json;
using Gatehouse.IntegrationTests.Infrastructure;

namespace Gatehouse.IntegrationTests.Reencrypt;

/// <summary>
/// Backend health end to end (curl through the edge, real TLS backends): active checks take a backend out and bring
/// it back, all backends out gives 503, passive detection takes out a backend that refuses connections and tries it
/// again later, and a backend removed from a site drains (its request in flight completes).
/// </summary>
public sealed class BackendHealthTests : IAsyncLifetime
{
    private readonly TestCa _ca = new("Health CA");
    private readonly string _caFile = Path.Combine(Path.GetTempPath(), "gatehouse-health-ca-" + Guid.NewGuid().ToString("N")[..10] + ".pem");
    private readonly List<TlsBackend> _backends = [];
    private GatehouseInstance? _gatehouse;

    private GatehouseInstance Gatehouse => _gatehouse!;

    public Task InitializeAsync()
    {
        File.WriteAllText(_caFile, _ca.Pem);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task ActiveHealthCheck_FailingBackend_IsTakenOutAndBroughtBack_AllOutGives503()
    {
        var a = await StartBackendAsync("a");
        var b = await StartBackendAsync("b");
        await StartGatehouseAsync("active.test", [a, b], "healthCheck: {path: /healthz, interval: 1s, timeout: 1s, unhealthyAfter: 2, healthyAfter: 2}");
        Assert.True(await SeenAsync("active.test", ["a", "b"]), Logs());

        b.HealthStatus = 503;
        Assert.True(await OnlyAsync("active.test", "a"), Logs());
        Assert.True(Gatehouse.Logs.Any(l => l.Contains("[5801]", StringComparison.Ordinal) && l.Contains($"backend {b.Url}/ is unhealthy after 2 failed health checks: status 503", StringComparison.Ordinal)), Logs());

        a.HealthStatus = 500;
        Assert.True(await GatehouseInstance.EventuallyAsync(async () => (await CurlAsync("active.test", "/")).Status == 503, TimeSpan.FromSeconds(30)), Logs());
        Assert.Contains("503 Service Unavailable", (await CurlAsync("active.test", "/")).Body, StringComparison.Ordinal);

        a.HealthStatus = 200;
        b.HealthStatus = 200;
        Assert.True(await SeenAsync("active.test", ["a", "b"]), Logs());
        Assert.True(Gatehouse.Logs.Any(l => l.Contains("[5802]", StringComparison.Ordinal) && l.Contains($"backend {b.Url}/ is healthy after 2", StringComparison.Ordinal)), Logs());
    }

    [Fact]
    public async Task PassiveDetection_BackendRefusingConnections_IsTakenOutThenTriedAgain()
    {
        var a = await StartBackendAsync("a");
        var deadPort = Ports.Free(); // nothing listens yet
        await StartGatehouseAsync("passive.test", [a], "healthCheck: {reactivateAfter: 2s}", extraBackend: $"https://127.0.0.1:{deadPort}");

        // Every other request fails at first (502); after three failures in a row the dead backend is out and all go
        // to a.
        Assert.True(await OnlyAsync("passive.test", "a", attempts: 30), Logs());
        Assert.Contains(Gatehouse.Logs, l => l.Contains("[5704]", StringComparison.Ordinal) && l.Contains($"127.0.0.1:{deadPort}", StringComparison.Ordinal));

        // The backend comes up; once the reactivation period has passed it is tried again and gets requests.
        var revived = await TlsBackend.StartAsync("revived", _ca.IssueServer(["127.0.0.1"]), port: deadPort);
        _backends.Add(revived);
        Assert.True(await SeenAsync("passive.test", ["a", "revived"]), Logs());
    }

    [Fact]
    public async Task RemovedBackend_Drains_RequestInFlightCompletes_NewRequestsGoToTheOther()
    {
        var a = await StartBackendAsync("a");
        var b = await StartBackendAsync("b");
        await StartGatehouseAsync("drain.test", [a, b], "");

        var slow = CurlAsync("drain.test", "/slow");
        Assert.True(await GatehouseInstance.EventuallyAsync(() => Task.FromResult(a.SlowWaiting + b.SlowWaiting == 1), TimeSpan.FromSeconds(30)), Logs());
        var (leaving, staying) = a.SlowWaiting == 1 ? (a, b) : (b, a);

        Gatehouse.WriteConfig(SitesYaml("drain.test", [staying], ""));
        Assert.True(await OnlyAsync("drain.test", staying.Name), Logs());
        Assert.False(slow.IsCompleted);

        leaving.ReleaseSlow();
        var (status, body) = await slow;
        Assert.Equal(200, status);
        Assert.Equal(leaving.Name, JsonDocument.Parse(body).RootElement.GetProperty("backend").GetString());
    }

    public async Task DisposeAsync()
    {
        if (_gatehouse is not null)
        {
            await _gatehouse.DisposeAsync();
        }

        foreach (var backend in _backends)
        {
            await backend.DisposeAsync();
        }

        _ca.Dispose();
        File.Delete(_caFile);
    }

    private async Task<TlsBackend> StartBackendAsync(string name)
    {
        var backend = await TlsBackend.StartAsync(name, _ca.IssueServer(["127.0.0.1"]));
        _backends.Add(backend);
        return backend;
    }

    private string SitesYaml(string host, IEnumerable<TlsBackend> backends, string extra, string? extraBackend = null)
    {
        var urls = backends.Select(b => $"'{b.Url}'").Concat(extraBackend is null ? [] : [$"'{extraBackend}'"]);
        return $"[{{hosts: [{host}], mode: reencrypt, backends: [{string.Join(", ", urls)}], backendTls: {{caFile: '{_caFile}'}}{(extra.Length > 0 ? ", " + extra : "")}}}]";
    }

    private async Task StartGatehouseAsync(string host, IEnumerable<TlsBackend> backends, string extra, string? extraBackend = null)
    {
        _gatehouse = await GatehouseInstance.StartAsync(SitesYaml(host, backends, extra, extraBackend));
        await Gatehouse.WaitForNewLeafAsync(host, GatehouseInstance.TrustOnly(Gatehouse.Root), null, TimeSpan.FromSeconds(30));
    }

    /// <summary>Whether, within a minute (and a bounded number of requests), every one of <paramref name="names"/> answered.</summary>
    private async Task<bool> SeenAsync(string host, string[] names)
    {
        var seen = new HashSet<string>();
        var deadline = DateTime.UtcNow.AddMinutes(1);
        for (var i = 0; i < 1000 && DateTime.UtcNow < deadline && !names.All(seen.Contains); i++)
        {
            var (status, body) = await CurlAsync(host, "/");
            if (status == 200)
            {
                seen.Add(JsonDocument.Parse(body).RootElement.GetProperty("backend").GetString()!);
            }

            await Task.Delay(50);
        }

        return names.All(seen.Contains);
    }

    /// <summary>Whether, within <paramref name="attempts"/> requests, 10 in a row were answered by <paramref name="name"/>.</summary>
    private async Task<bool> OnlyAsync(string host, string name, int attempts = 300)
    {
        var streak = 0;
        for (var i = 0; i < attempts && streak < 10; i++)
        {
            var (status, body) = await CurlAsync(host, "/");
            streak = status == 200 && JsonDocument.Parse(body).RootElement.GetProperty("backend").GetString() == name ? streak + 1 : 0;
            if (streak == 0)
            {
                await Task.Delay(50);
            }
        }

        return streak == 10;
    }

    private Task<(int Status, string Body)> CurlAsync(string host, string path) => ReencryptTests.CurlThroughEdgeAsync(Gatehouse, host, path);

    private string Logs() => string.Join('\n', Gatehouse.Logs.TakeLast(25));
}
