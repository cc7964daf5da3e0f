using System.Text;
using Gatehouse.IntegrationTests.Infrastructure;
using Gatehouse.Storage;
using Gatehouse.Storage.Etcd;

namespace Gatehouse.IntegrationTests.Storage;

/// <summary>The etcd store against a member that wants TLS with a client certificate and a user with a password,
/// whose auth tokens live one second.</summary>
public sealed class EtcdSecureClusterTests : IAsyncLifetime
{
    private const string Key = "/gatehouse/v1/test/secure";
    private EtcdCluster _cluster = null!;

    public async Task InitializeAsync()
    {
        _cluster = await EtcdCluster.StartAsync(1, tls: true, extraArguments: ["--auth-token-ttl", "1"]);
        await _cluster.EtcdctlAsync(["user", "add", "root", "--interactive=false", "--new-user-password", "root-pw"]);
        await _cluster.EtcdctlAsync(["role", "add", "gatehouse"]);
        await _cluster.EtcdctlAsync(["role", "grant-permission", "gatehouse", "--prefix=true", "readwrite", "/secure/"]);
        await _cluster.EtcdctlAsync(["user", "add", "gatehouse", "--interactive=false", "--new-user-password", "gh-pw"]);
        await _cluster.EtcdctlAsync(["user", "grant-role", "gatehouse", "gatehouse"]);
        await _cluster.EtcdctlAsync(["auth", "enable"]);
        _cluster.EtcdctlUser = "root:root-pw";
    }

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    private EtcdStoreOptions Options(string password = "gh-pw", bool clientCertificate = true) => new()
    {
        Endpoints = _cluster.Endpoints,
        KeyPrefix = "/secure",
        CaFile = _cluster.CaFile,
        CertificateFile = clientCertificate ? _cluster.ClientCertificateFile : null,
        KeyFile = clientCertificate ? _cluster.ClientKeyFile : null,
        Username = "gatehouse",
        Password = password,
        RequestTimeout = TimeSpan.FromSeconds(2),
    };

    [Fact]
    public async Task TlsClientCertificateAndUser_EveryOperationWorks_AcrossTokenExpiry()
    {
        var logs = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await using var store = EtcdStore.Open(Options(), new ListLoggerProvider(logs).CreateLogger("etcd"));
        var put = await store.CommitAsync(new StoreTransaction().Put(Key, "one"u8.ToArray()));
        Assert.True(put.Succeeded);

        // The token from the first call has expired by now: the store gets a new one and goes on.
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        Assert.Equal("one", Encoding.UTF8.GetString((await store.GetAsync(Key))!.Value.Span));
        Assert.Contains(logs, line => line.Contains("refused the auth token for a read", StringComparison.Ordinal));
        var lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(30));
        var second = await store.CommitAsync(new StoreTransaction().If(StoreCondition.Unchanged(Key, put.Revision)).Put(Key, "two"u8.ToArray(), lease));
        Assert.True(second.Succeeded);
        Assert.True(await store.KeepAliveAsync(lease));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var changes = store.WatchAsync("/gatehouse/v1/test/", put.Revision, timeout.Token).GetAsyncEnumerator(timeout.Token);
        Assert.True(await changes.MoveNextAsync());
        Assert.Equal((StoreEventKind.Put, second.Revision), (changes.Current.Kind, changes.Current.Revision));
        Assert.Equal("two", (await _cluster.EtcdctlAsync(["get", "/secure" + Key, "--print-value-only"])).StandardOutput.Trim());
        await store.RevokeLeaseAsync(lease);
        Assert.Null(await store.GetAsync(Key));
    }

    [Fact]
    public async Task WrongPasswordOrNoClientCertificate_IsUnavailable_AndTheMessageHoldsNoSecret()
    {
        await using var wrongPassword = EtcdStore.Open(Options(password: "not-the-password"));
        var refused = await Assert.ThrowsAsync<StoreUnavailableException>(() => wrongPassword.GetAsync(Key).AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("'gatehouse'", refused.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("not-the-password", refused.ToString(), StringComparison.Ordinal);

        await using var noCertificate = EtcdStore.Open(Options(clientCertificate: false));
        var handshake = await Assert.ThrowsAsync<StoreUnavailableException>(() => noCertificate.GetAsync(Key).AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains(_cluster.Endpoints[0].GetLeftPart(UriPartial.Authority), handshake.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("gh-pw", handshake.ToString(), StringComparison.Ordinal);
    }
}
