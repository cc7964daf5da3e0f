using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Gatehouse.IntegrationTests.Infrastructure;

namespace Gatehouse.IntegrationTests.Storage;

/// <summary>Two Gatehouse servers on one etcd prefix are one system: what is added through one is served by both.</summary>
[Collection(EtcdCollection.Name)]
public sealed class SharedEtcdStoreTests(EtcdFixture etcd) : IAsyncLifetime
{
    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => etcd.RevokeAllLeasesAsync();

    [Fact]
    public async Task TwoInstancesOnOnePrefix_ASiteAddedThroughOneIsServedByTheOther()
    {
        await using var backend = await Backend.StartAsync("shared");
        var endpoints = string.Join(", ", etcd.Cluster.Endpoints.Select(e => e.GetLeftPart(UriPartial.Authority)));
        var store = $"store: {{type: etcd, etcd: {{endpoints: [{endpoints}], prefix: {EtcdFixture.NewPrefix()}, timeout: 5s}}}}";
        await using var first = await GatehouseInstance.StartAsync(extraYaml: store);

        // The second instance shares the store and so must share the master key (the store holds only sealed
        // secrets); the admin token file goes along so that neither replaces the other's.
        await using var second = GatehouseInstance.Create(extraYaml: store);
        Directory.CreateDirectory(second.DataDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.Copy(Path.Combine(first.DataDirectory, "master.key"), Path.Combine(second.DataDirectory, "master.key"));
        File.Copy(Path.Combine(first.DataDirectory, "admin.token"), Path.Combine(second.DataDirectory, "admin.token"));
        await second.RestartAsync();
        Assert.DoesNotContain(second.Logs, line => line.Contains("admin token", StringComparison.OrdinalIgnoreCase));

        using var admin = first.AdminClient();
        using var created = await admin.PostAsJsonAsync("v1/sites", new { hosts = new[] { "shared.test" }, backends = new[] { backend.Url } });
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());

        // One local CA for both (it lives in the store), so the second serves a certificate the first's root trusts.
        Assert.Equal(first.Root.Thumbprint, second.Root.Thumbprint);
        await second.WaitUntilServedAsync(["shared.test"]);
        using var client = second.EdgeClient();
        using var answer = JsonDocument.Parse(await client.GetStringAsync($"https://shared.test:{second.HttpsPort}/"));
        Assert.Equal("shared", answer.RootElement.GetProperty("x-backend").GetString());
        await first.WaitUntilServedAsync(["shared.test"]);
    }
}
