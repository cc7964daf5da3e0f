using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Gatehouse.IntegrationTests.Infrastructure;

namespace Gatehouse.IntegrationTests;

/// <summary>The admin API and live changes: sites added, removed and edited without restart.</summary>
public sealed class AdminAndLiveChangeTests : IAsyncLifetime
{
    /// <summary>The promise: a new site is served with its certificate within two seconds.</summary>
    private static readonly TimeSpan LiveChangeDeadline = TimeSpan.FromSeconds(2);

    private Backend _backend = null!;
    private GatehouseInstance _gatehouse = null!;

    public async Task InitializeAsync()
    {
        _backend = await Backend.StartAsync("live");
        _gatehouse = await GatehouseInstance.StartAsync($$"""

              - hosts: [config.test]
                backends: [{{_backend.Url}}]
            """);
    }

    public async Task DisposeAsync()
    {
        await _gatehouse.DisposeAsync();
        await _backend.DisposeAsync();
    }

    [Fact]
    public async Task Admin_WithoutOrWithWrongToken_Gets401AndChangesNothing()
    {
        using var anonymous = _gatehouse.AdminClient(withToken: false);
        using var wrong = _gatehouse.AdminClient(token: "not-the-token");
        var body = JsonContent.Create(new { hosts = new[] { "sneaky.test" }, backends = new[] { _backend.Url } });
        foreach (var client in new[] { anonymous, wrong })
        {
            using var post = await client.PostAsync("v1/sites", body);
            Assert.Equal(HttpStatusCode.Unauthorized, post.StatusCode);
            Assert.Equal("application/problem+json", post.Content.Headers.ContentType?.MediaType);
            using var delete = await client.DeleteAsync("v1/sites/config.test");
            Assert.Equal(HttpStatusCode.Unauthorized, delete.StatusCode);
            using var list = await client.GetAsync("v1/certificates");
            Assert.Equal(HttpStatusCode.Unauthorized, list.StatusCode);
        }

        using var admin = _gatehouse.AdminClient();
        var sites = await admin.GetStringAsync("v1/sites");
        Assert.DoesNotContain("sneaky.test", sites, StringComparison.Ordinal);
        Assert.Contains("config.test", sites, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Admin_HealthAndReadiness_NeedNoToken()
    {
        using var anonymous = _gatehouse.AdminClient(withToken: false);
        Assert.Equal("ok\n", await anonymous.GetStringAsync("healthz"));
        Assert.Equal("ready\n", await anonymous.GetStringAsync("readyz"));
    }

    [Fact]
    public async Task Admin_AddSite_IsServedWithinTwoSeconds_AndRemoveStopsItWithinTwoSeconds()
    {
        using var admin = _gatehouse.AdminClient();
        using var created = await admin.PostAsJsonAsync("v1/sites", new { hosts = new[] { "Added.test", "www.added.test" }, backends = new[] { _backend.Url } });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var added = DateTime.UtcNow;
        using var edge = _gatehouse.EdgeClient();
        Assert.True(await GatehouseInstance.EventuallyAsync(async () => await TryGetAsync(edge, "www.added.test") == HttpStatusCode.OK, LiveChangeDeadline), "not served in time");

        var certificates = JsonDocument.Parse(await admin.GetStringAsync("v1/certificates")).RootElement.EnumerateArray().ToList();
        var certificate = certificates.Single(c => c.GetProperty("id").GetString() == "added.test");
        Assert.Equal(["added.test", "www.added.test"], certificate.GetProperty("names").EnumerateArray().Select(n => n.GetString()));
        Assert.Equal("local", certificate.GetProperty("issuer").GetString());
        Assert.Equal("valid", certificate.GetProperty("status").GetString());
        Assert.True(certificate.GetProperty("served").GetBoolean());
        var notAfter = certificate.GetProperty("notAfter").GetDateTimeOffset();
        var nextRenewal = certificate.GetProperty("nextRenewal").GetDateTimeOffset();
        Assert.InRange((notAfter - added).TotalDays, 6.9, 7.1); // default lifetime
        Assert.InRange((notAfter - nextRenewal).TotalDays, 2.2, 2.5); // renewed with a third left
        Assert.Contains(_gatehouse.Logs, l => l.Contains("Issued certificate added.test for added.test,www.added.test by local, serial " + certificate.GetProperty("serial").GetString(), StringComparison.Ordinal));

        using var removed = await admin.DeleteAsync("v1/sites/www.added.test");
        Assert.Equal(HttpStatusCode.NoContent, removed.StatusCode);
        Assert.True(await GatehouseInstance.EventuallyAsync(
            async () => (await EdgeTests.RawHandshakeAsync(_gatehouse.HttpsPort, "added.test")).SequenceEqual(new byte[] { 21, 3, 3, 0, 2, 2, 112 }),
            LiveChangeDeadline), "still served after removal");
    }

    [Fact]
    public async Task Admin_InvalidSite_Gets400WithEveryErrorAndChangesNothing()
    {
        using var admin = _gatehouse.AdminClient();
        using var response = await admin.PostAsJsonAsync("v1/sites", new { hosts = new[] { "ok.test", "bad..test" }, backends = new[] { "ftp://x" }, issuers = new[] { "nope" } });
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        var paths = problem.GetProperty("errors").EnumerateArray().Select(e => e.GetProperty("path").GetString()).ToList();
        Assert.Equal(["site:hosts:1", "site:backends:0", "site:issuers:0"], paths);
        Assert.DoesNotContain("ok.test", await admin.GetStringAsync("v1/sites"), StringComparison.Ordinal);

        using var garbage = await admin.PostAsync("v1/sites", new StringContent("{not json", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, garbage.StatusCode);
    }

    [Fact]
    public async Task Admin_HostClaimedByAnotherSite_Gets409()
    {
        using var admin = _gatehouse.AdminClient();
        using var conflict = await admin.PostAsJsonAsync("v1/sites", new { hosts = new[] { "mine.test", "config.test" }, backends = new[] { _backend.Url } });
        Assert.Equal(HttpStatusCode.Conflict, conflict.StatusCode);
        var error = JsonDocument.Parse(await conflict.Content.ReadAsStringAsync()).RootElement.GetProperty("errors")[0];
        Assert.Equal("site:hosts:1", error.GetProperty("path").GetString());
        Assert.Equal("'config.test' is already claimed by site 'config.test' (in the config file)", error.GetProperty("message").GetString());
        Assert.DoesNotContain("mine.test", await admin.GetStringAsync("v1/sites"), StringComparison.Ordinal);

        using var removeConfigSite = await admin.DeleteAsync("v1/sites/config.test");
        Assert.Equal(HttpStatusCode.Conflict, removeConfigSite.StatusCode);
        using var removeMissing = await admin.DeleteAsync("v1/sites/missing.test");
        Assert.Equal(HttpStatusCode.NotFound, removeMissing.StatusCode);
    }

    [Fact]
    public async Task Admin_LocalCaRoot_IsServedAndMatchesTheFile()
    {
        using var admin = _gatehouse.AdminClient();
        var pem = await admin.GetStringAsync("v1/ca/root");
        Assert.Equal(File.ReadAllText(Path.Combine(_gatehouse.DataDirectory, "local-ca-root.pem")).Trim(), pem.Trim());
    }

    [Fact]
    public async Task ConfigFile_EditedWhileRunning_AppliesValidChangesAndRefusesBadOnes()
    {
        using var edge = _gatehouse.EdgeClient();
        Assert.True(await GatehouseInstance.EventuallyAsync(async () => await TryGetAsync(edge, "config.test") == HttpStatusCode.OK, TimeSpan.FromSeconds(10)), "the config file's site was never served");

        _gatehouse.WriteConfig($$"""

              - hosts: [config.test]
                backends: [{{_backend.Url}}]
              - hosts: [edited.test]
                backends: [{{_backend.Url}}]
            """);
        Assert.True(await GatehouseInstance.EventuallyAsync(async () => await TryGetAsync(edge, "edited.test") == HttpStatusCode.OK, TimeSpan.FromSeconds(5)), "edit not applied");

        // A bad edit: every error is logged, nothing changes.
        _gatehouse.WriteConfig("""

              - hosts: [bad..test]
                backends: [nope]
            """);
        Assert.True(await GatehouseInstance.EventuallyAsync(() => Task.FromResult(_gatehouse.Logs.Any(l => l.Contains("sites:0:backends:0", StringComparison.Ordinal))), TimeSpan.FromSeconds(5)));
        Assert.Contains(_gatehouse.Logs, l => l.Contains("sites:0:hosts:0: 'bad..test' is not a valid host name", StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.OK, await TryGetAsync(edge, "edited.test"));
        Assert.Equal(HttpStatusCode.OK, await TryGetAsync(edge, "config.test"));

        // Removing a site from the file stops serving it.
        _gatehouse.WriteConfig($$"""

              - hosts: [config.test]
                backends: [{{_backend.Url}}]
            """);
        Assert.True(await GatehouseInstance.EventuallyAsync(async () => await TryGetAsync(edge, "edited.test") != HttpStatusCode.OK, TimeSpan.FromSeconds(5)), "removal not applied");
        Assert.Equal(HttpStatusCode.OK, await TryGetAsync(edge, "config.test"));
    }

    private async Task<HttpStatusCode?> TryGetAsync(HttpClient client, string host)
    {
        try
        {
            using var response = await client.GetAsync($"https://{host}:{_gatehouse.HttpsPort}/");
            return response.StatusCode;
        }
        catch (HttpRequestException)
        {
            return null; // handshake refused: not served (yet)
        }
    }
}
