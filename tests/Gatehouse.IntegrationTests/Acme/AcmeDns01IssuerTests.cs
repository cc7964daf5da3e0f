using Gatehouse.Certificates;
using Gatehouse.IntegrationTests.Infrastructure;
using Gatehouse.Storage;

namespace Gatehouse.IntegrationTests.Acme;

/// <summary>
/// A wildcard certificate through DNS-01: Gatehouse publishes the TXT records in BIND 9 by RFC 2136 dynamic update
/// with TSIG, waits until BIND answers with them, and Pebble (resolving through that BIND) validates.
/// </summary>
public sealed class AcmeDns01IssuerTests : IAsyncLifetime
{
    private Backend _backend = null!;
    private GatehouseInstance _gatehouse = null!;
    private Bind _bind = null!;
    private Pebble _pebble = null!;

    public async Task InitializeAsync()
    {
        _backend = await Backend.StartAsync("dns");
        _bind = await Bind.StartAsync();
        _gatehouse = GatehouseInstance.Create();
        _pebble = await Pebble.StartForAsync(_gatehouse, new PebbleOptions { DnsServer = _bind.Server });
        await File.WriteAllTextAsync(Path.Combine(_gatehouse.Directory, "tsig.key"), Convert.ToBase64String(_bind.Secret) + "\n");
        _gatehouse.WriteConfig($$"""

              - hosts: ["*.wild.acme.test", wild.acme.test]
                backends: [{{_backend.Url}}]
                issuers: [pebble-dns]
            """, $$"""
            issuers:
              pebble-dns:
                type: acme
                directory: "{{_pebble.DirectoryUrl}}"
                caBundle: pebble-ca.pem
                acceptTerms: true
                challenges: [dns-01]
                dns: {type: rfc2136, server: "{{_bind.Server}}", zone: acme.test, keyName: {{Bind.KeyName}}, secretFile: {{Path.Combine(_gatehouse.Directory, "tsig.key")}}, nameservers: [127.0.0.1], nameserverPort: {{_bind.Port}}}
            """);
        await _gatehouse.RestartAsync();
    }

    public async Task DisposeAsync()
    {
        await _gatehouse.DisposeAsync();
        await _pebble.DisposeAsync();
        await _bind.DisposeAsync();
        await _backend.DisposeAsync();
    }

    [Fact]
    public async Task WildcardSite_IsIssuedThroughBind_AndServedForAnyName_AndTheTxtRecordsAreRemoved()
    {
        var root = await _pebble.GetRootAsync();
        await _gatehouse.WaitUntilServedAsync(["wild.acme.test", "anything.wild.acme.test"], GatehouseInstance.TrustOnly(root), TimeSpan.FromSeconds(45));

        var record = CoreJson.Deserialize<CertificateRecord>((await _gatehouse.Server.Store.GetAsync(StoreKeys.Certificate("*.wild.acme.test")))!);
        Assert.Equal(("pebble-dns", CertificateStatus.Valid), (record.Issuer, record.Status));
        Assert.Empty(await _bind.DigTxtAsync("_acme-challenge.wild.acme.test."));
    }
}
