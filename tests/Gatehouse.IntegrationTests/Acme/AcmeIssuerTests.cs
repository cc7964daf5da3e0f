using System.Net;
using Gatehouse.Certificates;
using Gatehouse.IntegrationTests.Infrastructure;
using Gatehouse.Storage;

namespace Gatehouse.IntegrationTests.Acme;

/// <summary>
/// Gatehouse issuing from a real ACME CA (Pebble 2.4.0, default 5% badNonce): Pebble validates HTTP-01 against the
/// edge's port 80 listener and TLS-ALPN-01 against its HTTPS listener, both answered from the store.
/// </summary>
public sealed class AcmeIssuerTests : IAsyncLifetime
{
    private Backend _backend = null!;
    private GatehouseInstance _gatehouse = null!;
    private Pebble _pebble = null!;

    public async Task InitializeAsync()
    {
        _backend = await Backend.StartAsync("acme");
        _gatehouse = GatehouseInstance.Create();
        _pebble = await Pebble.StartAsync(new PebbleOptions { HttpPort = _gatehouse.HttpPort, TlsAlpnPort = _gatehouse.HttpsPort });
        var bundle = Path.Combine(_gatehouse.Directory, "pebble-ca.pem");
        await File.WriteAllTextAsync(bundle, _pebble.TransportRoot.ExportCertificatePem());
        _gatehouse.WriteConfig($$"""

              - hosts: [http.acme.test, www.http.acme.test]
                backends: [{{_backend.Url}}]
                issuers: [pebble-http]
              - hosts: [alpn.acme.test]
                backends: [{{_backend.Url}}]
                issuers: [pebble-alpn]
            """, $$"""
            issuers:
              pebble-http: {type: acme, directory: "{{_pebble.DirectoryUrl}}", caBundle: pebble-ca.pem, acceptTerms: true, contact: [mailto:ops@acme.test], challenges: [http-01]}
              pebble-alpn: {type: acme, directory: "{{_pebble.DirectoryUrl}}", caBundle: pebble-ca.pem, acceptTerms: true, challenges: [tls-alpn-01]}
            """);
        await _gatehouse.RestartAsync();
    }

    public async Task DisposeAsync()
    {
        await _gatehouse.DisposeAsync();
        await _pebble.DisposeAsync();
        await _backend.DisposeAsync();
    }

    [Fact]
    public async Task NewSites_GetPebbleCertificates_ValidatedThroughTheEdge_AndAreServed()
    {
        var root = await _pebble.GetRootAsync();
        using var edge = _gatehouse.EdgeClient(trust: GatehouseInstance.TrustOnly(root));
        foreach (var host in new[] { "http.acme.test", "www.http.acme.test", "alpn.acme.test" })
        {
            Assert.True(await GatehouseInstance.EventuallyAsync(async () =>
            {
                try
                {
                    using var response = await edge.GetAsync($"https://{host}:{_gatehouse.HttpsPort}/");
                    return response.StatusCode == HttpStatusCode.OK;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            }, TimeSpan.FromSeconds(30)), $"{host} was not served with a Pebble certificate; logs:\n{string.Join('\n', _gatehouse.Logs.TakeLast(30))}");
        }

        // The records name their issuer; the account key is sealed in the store; challenges were cleaned up.
        var store = _gatehouse.Server.Store;
        var http = CoreJson.Deserialize<CertificateRecord>((await store.GetAsync(StoreKeys.Certificate("http.acme.test")))!);
        Assert.Equal(("pebble-http", CertificateStatus.Valid), (http.Issuer, http.Status));
        Assert.Equal(["http.acme.test", "www.http.acme.test"], http.Names);
        Assert.Equal("pebble-alpn", CoreJson.Deserialize<CertificateRecord>((await store.GetAsync(StoreKeys.Certificate("alpn.acme.test")))!).Issuer);
        var account = CoreJson.Deserialize<AcmeAccountRecord>((await store.GetAsync(StoreKeys.AcmeAccount("pebble-http")))!);
        Assert.NotNull(account.Url);
        Assert.True(Gatehouse.Keys.EnvelopeCipher.TryReadKeyVersion(account.SealedKey, out _, out _));
        Assert.Empty((await store.ListAsync(StoreKeys.Http01Prefix)).Entries);
        Assert.Empty((await store.ListAsync(StoreKeys.TlsAlpn01Prefix)).Entries);
    }
}
