using System.Buffers.Text;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Certificates;
using Gatehouse.IntegrationTests.Infrastructure;
using Gatehouse.Storage;

namespace Gatehouse.IntegrationTests.Acme;

/// <summary>
/// Gatehouse against a Pebble that requires external account binding, blocks a domain and issues 30-second
/// certificates: the right EAB key issues and renews in real time (new key, served without restart); a wrong EAB key
/// and a blocked name fail with the CA's words, marked as not retryable, with no retry storm.
/// </summary>
public sealed class AcmeRenewalAndFaultTests : IAsyncLifetime
{
    private const string EabKeyId = "gatehouse-kid";
    private readonly byte[] _eabKey = RandomNumberGenerator.GetBytes(32);
    private Backend _backend = null!;
    private GatehouseInstance _gatehouse = null!;
    private Pebble _pebble = null!;

    public async Task InitializeAsync()
    {
        _backend = await Backend.StartAsync("renew");
        _gatehouse = GatehouseInstance.Create();
        _pebble = await Pebble.StartForAsync(_gatehouse, new PebbleOptions
        {
            ExternalAccountMacKeys = new Dictionary<string, string> { [EabKeyId] = Base64Url.EncodeToString(_eabKey) },
            DomainBlocklist = ["blocked.acme.test"],
            CertificateValiditySeconds = 30,
        });
        await File.WriteAllTextAsync(Path.Combine(_gatehouse.Directory, "eab.key"), Base64Url.EncodeToString(_eabKey));
        await File.WriteAllTextAsync(Path.Combine(_gatehouse.Directory, "wrong-eab.key"), Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32)));
        var eab = Path.Combine(_gatehouse.Directory, "eab.key");
        var wrongEab = Path.Combine(_gatehouse.Directory, "wrong-eab.key");
        _gatehouse.WriteConfig($$"""

              - hosts: [renew.acme.test]
                backends: [{{_backend.Url}}]
                issuers: [pebble]
              - hosts: [www.blocked.acme.test]
                backends: [{{_backend.Url}}]
                issuers: [pebble]
              - hosts: [wrong-eab.acme.test]
                backends: [{{_backend.Url}}]
                issuers: [pebble-wrong-eab]
            """, $$"""
            issuers:
              pebble: {type: acme, directory: "{{_pebble.DirectoryUrl}}", caBundle: pebble-ca.pem, acceptTerms: true, eab: {kid: {{EabKeyId}}, hmacFile: "{{eab}}"} }
              pebble-wrong-eab: {type: acme, directory: "{{_pebble.DirectoryUrl}}", caBundle: pebble-ca.pem, acceptTerms: true, eab: {kid: {{EabKeyId}}, hmacFile: "{{wrongEab}}"} }
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
    public async Task RightEab_IssuesAndRenewsInRealTime_WrongEabAndBlockedName_FailClearlyWithoutRetryStorm()
    {
        var trust = GatehouseInstance.TrustOnly(await _pebble.GetRootAsync());
        var first = await _gatehouse.WaitForNewLeafAsync("renew.acme.test", trust, null, TimeSpan.FromSeconds(30));

        // Renewed at a third of 30 s left: a new serial and a new key, served by the same running server.
        var renewed = await _gatehouse.WaitForNewLeafAsync("renew.acme.test", trust, first.SerialNumber, TimeSpan.FromSeconds(45));
        Assert.NotEqual(first.GetECDsaPublicKey()!.ExportSubjectPublicKeyInfo(), renewed.GetECDsaPublicKey()!.ExportSubjectPublicKeyInfo());

        var store = _gatehouse.Server.Store;
        var blocked = await RecordAsync(store, "www.blocked.acme.test");
        Assert.Equal(CertificateStatus.Failing, blocked.Status);
        Assert.Contains("rejectedIdentifier", blocked.LastError, StringComparison.Ordinal);
        Assert.Contains("not retryable", blocked.LastError, StringComparison.Ordinal);
        Assert.Equal(1, blocked.ConsecutiveFailures); // no retry storm: the next try is hours away
        Assert.True(blocked.RetryAfter > DateTimeOffset.UtcNow + TimeSpan.FromHours(1), $"retry at {blocked.RetryAfter}");

        var wrongEab = await RecordAsync(store, "wrong-eab.acme.test");
        Assert.Equal(CertificateStatus.Failing, wrongEab.Status);
        Assert.Contains("pebble-wrong-eab: ", wrongEab.LastError, StringComparison.Ordinal);
        Assert.Contains("unauthorized", wrongEab.LastError, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(Base64Url.EncodeToString(_eabKey), string.Join('\n', _gatehouse.Logs), StringComparison.Ordinal);
    }

    private static async Task<CertificateRecord> RecordAsync(IStore store, string id)
    {
        CertificateRecord? record = null;
        Assert.True(await GatehouseInstance.EventuallyAsync(async () =>
        {
            var entry = await store.GetAsync(StoreKeys.Certificate(id));
            record = entry is null ? null : CoreJson.Deserialize<CertificateRecord>(entry);
            return record?.LastError is not null;
        }, TimeSpan.FromSeconds(20)), $"{id} never failed");
        return record!;
    }
}
