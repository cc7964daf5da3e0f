using System.Diagnostics;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.IntegrationTests.Infrastructure;
using Gatehouse.Keys;
using Gatehouse.Hosting;
using Xunit.Abstractions;

namespace Gatehouse.IntegrationTests;

/// <summary>
/// Start-up with a large store: the server opens a SQLite store of 100,000 sites with sealed certificate keys,
/// serves a handshake without opening them all first, and routes the first request among all the sites. Times go to
/// the test output; nothing asserts on them.
/// </summary>
public sealed class BulkStartupTests(ITestOutputHelper output)
{
    private const int Count = 100_000;

    [Fact]
    public async Task Start_StoreOf100000CertificateRecords_ServesTheRightCertificate()
    {
        await using var gatehouse = GatehouseInstance.Create();
        using var certificate = BulkCertificate.Create();
        var options = gatehouse.LoadOptions();
        Directory.CreateDirectory(options.DataDirectory);
        var watch = Stopwatch.StartNew();
        // The store and key ring exactly as the server opens them (the ring is created here, on first open).
        var (store, providers, keyRing) = await GatehouseServer.OpenStoreAndKeysAsync(options, TimeProvider.System, default);
        await using (store)
        using (keyRing)
        {
            await BulkStore.SeedAsync(store, new EnvelopeCipher(keyRing), certificate, Count);
            foreach (var provider in providers.Values)
            {
                provider.Dispose();
            }
        }

        output.WriteLine($"seeded {Count:N0} sites and certificate records in {watch.Elapsed.TotalSeconds:0.0} s");

        watch.Restart();
        await gatehouse.RestartAsync();
        var started = watch.Elapsed;
        var name = BulkStore.Host(Count / 2);
        await using var tls = await gatehouse.HandshakeAsync(name, trust: certificate.TrustOnlyRoot());
        output.WriteLine($"start: {started.TotalSeconds:0.00} s; start to first handshake ({name}): {watch.Elapsed.TotalSeconds:0.00} s");

        var leaf = new X509Certificate2(tls.RemoteCertificate!);
        Assert.Equal(certificate.Serial, leaf.SerialNumber);
        Assert.Equal(Count, gatehouse.Server.Cache.Count);
        Assert.True(gatehouse.Server.Cache.TryMatch(name, out var served));
        Assert.NotNull(served.Options);
        Assert.True(gatehouse.Server.Cache.TryMatch(BulkStore.Host(Count / 2 + 1), out var cold));
        Assert.Null(cold.Options); // only what a handshake asked for is opened

        // The first request is routed by host among all the sites to that site's (dead) backend: 502, not 503.
        watch.Restart();
        using var client = gatehouse.EdgeClient(trust: certificate.TrustOnlyRoot());
        using var response = await client.GetAsync($"https://{name}:{gatehouse.HttpsPort}/");
        output.WriteLine($"first request: {watch.Elapsed.TotalSeconds:0.00} s");
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.DoesNotContain(gatehouse.Logs, line => line.StartsWith("Error", StringComparison.Ordinal));
    }

}
