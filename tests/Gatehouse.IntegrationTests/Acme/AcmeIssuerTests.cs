using Gatehouse.Acme;
using Gatehouse.Certificates;
using Gatehouse.IntegrationTests.Infrastructure;
using Gatehouse.Keys;
using Gatehouse.Storage;

namespace Gatehouse.IntegrationTests.Acme;

/// <summary>
/// Gatehouse issuing from a real ACME CA (Pebble 2.4.0, default 5% badNonce): Pebble validates HTTP-01 against the
/// edge's port 80 listener and TLS-ALPN-01 against its HTTPS listener, both answered from the store.
/// </summary>
public sealed class AcmeIssuerTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private Backend _backend = null!;
    private GatehouseInstance _gatehouse = null!;
    private Pebble _pebble = null!;

    public async Task InitializeAsync()
    {
        _backend = await Backend.StartAsync("acme");
        _gatehouse = GatehouseInstance.Create();
        _pebble = await Pebble.StartForAsync(_gatehouse);
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
        await _gatehouse.WaitUntilServedAsync(["http.acme.test", "www.http.acme.test", "alpn.acme.test"], GatehouseInstance.TrustOnly(root));

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

    [Fact]
    public async Task CertsRevokeAndRenew_ThroughTheCli_RevokeAtTheCa_AndServeNewCertificates()
    {
        var root = await _pebble.GetRootAsync();
        var before = (await _gatehouse.WaitForNewLeafAsync("http.acme.test", GatehouseInstance.TrustOnly(root), null, Timeout)).SerialNumber;
        var alpnBefore = (await _gatehouse.WaitForNewLeafAsync("alpn.acme.test", GatehouseInstance.TrustOnly(root), null, Timeout)).SerialNumber;

        var revoke = await Cli("certs", "revoke", "www.http.acme.test", "--reason", "keyCompromise");
        Assert.True(revoke.ExitCode == 0, revoke.StandardError);
        Assert.Contains("revoked", revoke.StandardOutput, StringComparison.Ordinal);
        var (status, reason) = await _pebble.GetCertificateStatusAsync(before);
        Assert.Equal(("Revoked", 1), (status, reason));
        Assert.NotEqual(before, (await _gatehouse.WaitForNewLeafAsync("http.acme.test", GatehouseInstance.TrustOnly(root), before, Timeout)).SerialNumber);

        var renew = await Cli("certs", "renew", "alpn.acme.test");
        Assert.True(renew.ExitCode == 0, renew.StandardError);
        Assert.NotEqual(alpnBefore, (await _gatehouse.WaitForNewLeafAsync("alpn.acme.test", GatehouseInstance.TrustOnly(root), alpnBefore, Timeout)).SerialNumber);

        var badReason = await Cli("certs", "revoke", "alpn.acme.test", "--reason", "because");
        Assert.Equal(1, badReason.ExitCode);
        Assert.Contains("'because' is not one of", badReason.StandardError, StringComparison.Ordinal);
        var unknown = await Cli("certs", "renew", "nowhere.acme.test");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("No certificate covers 'nowhere.acme.test'", unknown.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task IssuersRolloverAndDeactivate_ThroughTheCli_OldKeyIsRefused_ThenANewAccountIssues()
    {
        var trust = GatehouseInstance.TrustOnly(await _pebble.GetRootAsync());
        var first = (await _gatehouse.WaitForNewLeafAsync("http.acme.test", trust, null, Timeout)).SerialNumber;
        var store = _gatehouse.Server.Store;
        using var http = _pebble.CreateHttpClient();
        var client = new AcmeClient(http, _pebble.DirectoryUrl, new AcmeClientOptions());
        using var ring = await _gatehouse.OpenKeyRingAsync(store);
        var cipher = new EnvelopeCipher(ring);
        async Task<(AcmeAccountRecord Record, AcmeAccountKey Key)> StoredAsync()
        {
            var record = CoreJson.Deserialize<AcmeAccountRecord>((await store.GetAsync(StoreKeys.AcmeAccount("pebble-http")))!);
            using var pkcs8 = cipher.Open(StoreKeys.AcmeAccount("pebble-http"), record.SealedKey);
            return (record, AcmeAccountKey.ImportPkcs8(pkcs8.Span));
        }

        var (before, oldKey) = await StoredAsync();
        using var oldKeyScope = oldKey;

        var rollover = await Cli("issuers", "rollover", "pebble-http");
        Assert.True(rollover.ExitCode == 0, rollover.StandardError);
        var (after, newKey) = await StoredAsync();
        using var newKeyScope = newKey;
        Assert.Equal(before.Url, after.Url);
        Assert.Null(after.PendingSealedKey);
        Assert.NotNull(after.KeyChanged);
        Assert.Null(await client.FindAccountAsync(oldKey, CancellationToken.None)); // the CA refuses the old key
        Assert.Equal(before.Url, (await client.FindAccountAsync(newKey, CancellationToken.None))?.Url);

        // The server signs with the new key from then on: a renewal issues on the same account.
        Assert.Equal(0, (await Cli("certs", "renew", "http.acme.test")).ExitCode);
        var renewed = (await _gatehouse.WaitForNewLeafAsync("http.acme.test", trust, first, Timeout)).SerialNumber;
        var show = await Cli("issuers", "account", "pebble-http", "--json");
        Assert.True(show.ExitCode == 0, show.StandardError);
        Assert.Contains("\"status\":\"valid\"", show.StandardOutput, StringComparison.Ordinal);

        var unconfirmed = await Cli("issuers", "deactivate", "pebble-http");
        Assert.Equal(1, unconfirmed.ExitCode);
        Assert.Contains("--yes", unconfirmed.StandardError, StringComparison.Ordinal);
        var deactivate = await Cli("issuers", "deactivate", "pebble-http", "--yes", "--json");
        Assert.True(deactivate.ExitCode == 0, deactivate.StandardError);
        Assert.Contains("\"status\":\"deactivated\"", deactivate.StandardOutput, StringComparison.Ordinal);
        Assert.Null(await store.GetAsync(StoreKeys.AcmeAccount("pebble-http")));

        // The next order registers a new account with a new key.
        Assert.Equal(0, (await Cli("certs", "renew", "http.acme.test")).ExitCode);
        await _gatehouse.WaitForNewLeafAsync("http.acme.test", trust, renewed, Timeout);
        var (replacement, replacementKey) = await StoredAsync();
        using var replacementKeyScope = replacementKey;
        Assert.NotEqual(before.Url, replacement.Url);

        var unknown = await Cli("issuers", "rollover", "nope");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("'nope' is not an ACME issuer", unknown.StandardError, StringComparison.Ordinal);
    }

    private Task<ToolResult> Cli(params string[] args) =>
        Tools.GatehouseAsync(_gatehouse.Directory, [.. args, "--admin", $"https://127.0.0.1:{_gatehouse.AdminPort}", "--data", _gatehouse.DataDirectory], TimeSpan.FromSeconds(60));
}
