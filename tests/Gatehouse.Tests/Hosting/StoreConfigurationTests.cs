using Gatehouse.Hosting;
using Gatehouse.Keys;
using Gatehouse.Storage;
using Gatehouse.Storage.Etcd;
using Gatehouse.Storage.Sqlite;

namespace Gatehouse.Tests.Hosting;

public sealed class StoreConfigurationTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    private (GatehouseOptions? Options, List<string> Errors) Load(string yaml, Dictionary<string, string?>? environment = null, string[]? overrides = null)
    {
        var path = Path.Combine(_directory.Path, "gatehouse.yaml");
        File.WriteAllText(path, yaml);
        var errors = new List<string>();
        return (new GatehouseConfiguration(path, overrides ?? [], environment ?? []).Load(errors), errors);
    }

    [Fact]
    public async Task NoStoreSection_MeansSqliteInTheDataDirectory()
    {
        var (options, errors) = Load("dataDirectory: ./d\n");

        Assert.Empty(errors);
        Assert.Equal(StoreType.Sqlite, options!.Store.Type);
        await using var store = Stores.Open(options, TimeProvider.System);
        Assert.Equal(Path.Combine(_directory.Path, "d", "gatehouse.db"), Assert.IsType<SqliteStore>(store).Path);
    }

    [Fact]
    public void EtcdSection_IsReadWithPathsRelativeToTheConfigFile()
    {
        var (options, errors) = Load("""
            store:
              type: etcd
              etcd:
                endpoints: [https://10.0.0.1:2379, https://10.0.0.2:2379]
                prefix: /prod-edge
                caFile: tls/ca.pem
                certFile: tls/client.pem
                keyFile: tls/client.key
                username: gatehouse
                passwordEnv: GATEHOUSE_ETCD_PASSWORD
                timeout: 3s
            """);

        Assert.Empty(errors);
        Assert.Equal(StoreType.Etcd, options!.Store.Type);
        var etcd = options.Store.Etcd!;
        Assert.Equal(["https://10.0.0.1:2379/", "https://10.0.0.2:2379/"], etcd.Endpoints.Select(e => e.ToString()));
        Assert.Equal("/prod-edge", etcd.Prefix);
        Assert.Equal(Path.Combine(_directory.Path, "tls", "ca.pem"), etcd.CaFile);
        Assert.Equal(Path.Combine(_directory.Path, "tls", "client.key"), etcd.KeyFile);
        Assert.Equal(("gatehouse", "GATEHOUSE_ETCD_PASSWORD", (string?)null), (etcd.Username, etcd.PasswordEnvironmentVariable, etcd.PasswordFile));
        Assert.Equal(TimeSpan.FromSeconds(3), etcd.Timeout);
    }

    [Fact]
    public void EtcdEndpoints_FromTheEnvironment_MayBeOneCommaSeparatedString()
    {
        var (options, errors) = Load("store: {type: etcd}\n", new Dictionary<string, string?>
        {
            ["GATEHOUSE_STORE__ETCD__ENDPOINTS"] = "http://127.0.0.1:2379, http://127.0.0.1:22379",
        });

        Assert.Empty(errors);
        Assert.Equal(2, options!.Store.Etcd!.Endpoints.Count);
        Assert.Equal(TimeSpan.FromSeconds(5), options.Store.Etcd.Timeout);
    }

    [Fact]
    public void EtcdMistakes_AreEachReportedWithFileAndKey()
    {
        var (options, errors) = Load("""
            store:
              type: etcd
              etcd:
                endpoints: [http://10.0.0.1:2379/v3, "not a url", ftp://10.0.0.3:2379, https://user:pw@10.0.0.4:2379]
                prefix: prod/
                certFile: client.pem
                password: hunter2
                passwordEnv: GATEHOUSE_ETCD_PASSWORD
                timeout: forever
                tls: on
            """);

        Assert.Null(options);
        Assert.True(errors.Count == 10, string.Join("\n", errors));
        Assert.Contains(errors, e => e.StartsWith("gatehouse.yaml: store:etcd:endpoints: 'http://10.0.0.1:2379/v3' has a path", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("gatehouse.yaml: store:etcd:endpoints: 'not a url' is not an http:// or https:// URL", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("gatehouse.yaml: store:etcd:endpoints: 'ftp://10.0.0.3:2379' is not an http:// or https:// URL", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("gatehouse.yaml: store:etcd:endpoints: 'https://…@10.0.0.4:2379' carries user information", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("gatehouse.yaml: store:etcd:prefix: 'prod/' must start with '/'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("gatehouse.yaml: store:etcd: a client certificate needs both certFile and keyFile", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("gatehouse.yaml: store:etcd:password: secrets never go in the configuration", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("gatehouse.yaml: store:etcd:passwordEnv: is only used with username", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("gatehouse.yaml: store:etcd:timeout: 'forever' is not a duration", StringComparison.Ordinal));
        Assert.Contains("gatehouse.yaml: store:etcd:tls: unknown key (known: endpoints, prefix, caFile, certFile, keyFile, username, passwordEnv, passwordFile, timeout)", errors);

        // The refused password is never repeated back.
        Assert.DoesNotContain(errors, e => e.Contains("hunter2", StringComparison.Ordinal));
        Assert.DoesNotContain(errors, e => e.Contains(":pw@", StringComparison.Ordinal));
    }

    [Fact]
    public void EtcdWithoutEndpoints_UnknownType_AndEtcdSectionWithSqlite_AreRefused()
    {
        var (_, missing) = Load("store: {type: etcd, etcd: {prefix: /x}}\n");
        Assert.Contains(missing, e => e.Contains("store:etcd:endpoints: required with store:type etcd", StringComparison.Ordinal));

        var (_, unknown) = Load("store: {type: redis}\n");
        Assert.Equal(["gatehouse.yaml: store:type: 'redis' is not a store type (sqlite, etcd)"], unknown);

        var (_, stray) = Load("store: {type: sqlite, etcd: {endpoints: [http://127.0.0.1:2379]}}\n");
        Assert.Equal(["gatehouse.yaml: store:etcd: is only read with store:type etcd (the store is sqlite)"], stray);

        var (_, mixed) = Load("store: {type: etcd, etcd: {endpoints: [http://10.0.0.1:2379, https://10.0.0.2:2379], caFile: ca.pem}}\n");
        Assert.Contains("gatehouse.yaml: store:etcd:endpoints: mixes http:// and https:// URLs", mixed);
        Assert.Contains("gatehouse.yaml: store:etcd:endpoints: caFile, certFile and keyFile are for TLS: the endpoints must be https:// URLs", mixed);

        var (_, both) = Load("store: {type: etcd, etcd: {endpoints: [http://10.0.0.1:2379], username: gh}}\n");
        Assert.Contains(both, e => e.StartsWith("gatehouse.yaml: store:etcd: give exactly one of passwordEnv", StringComparison.Ordinal));
    }

    [Fact]
    public void EtcdOverride_OnTheCommandLine_IsNamedAsSuch()
    {
        var (_, errors) = Load("store: {type: etcd, etcd: {endpoints: [http://127.0.0.1:2379]}}\n", overrides: ["--store:etcd:prefix=nope"]);
        Assert.Equal(["command line: store:etcd:prefix: 'nope' must start with '/' and not end with one (example: /prod-edge)"], errors);
    }

    [Fact]
    public async Task EtcdPassword_IsReadFromTheNamedPlace_AndAMissingOneIsReported()
    {
        var (options, errors) = Load("store: {type: etcd, etcd: {endpoints: [http://127.0.0.1:2379], username: gh, passwordFile: pw.txt}}\n");
        Assert.Empty(errors);
        await File.WriteAllTextAsync(Path.Combine(_directory.Path, "pw.txt"), "s3cret\n");
        var etcd = options!.Store.Etcd! with { PasswordFile = Path.Combine(_directory.Path, "pw.txt") };
        var storeOptions = Stores.ToEtcdStoreOptions(etcd, _ => null);
        Assert.Equal(("gh", "s3cret"), (storeOptions.Username, storeOptions.Password));
        Assert.DoesNotContain("s3cret", storeOptions.ToString(), StringComparison.Ordinal);

        var fromEnvironment = etcd with { PasswordFile = null, PasswordEnvironmentVariable = "GH_ETCD_PW" };
        var missing = Assert.Throws<MasterKeyException>(() => Stores.ToEtcdStoreOptions(fromEnvironment, _ => null));
        Assert.Contains("store:etcd: the etcd password is to come from environment variable GH_ETCD_PW", missing.Message, StringComparison.Ordinal);
        await Task.CompletedTask;
    }

    [Fact]
    public async Task EtcdStore_NobodyListening_ThrowsUnavailableNamingTheEndpointsButNoSecret()
    {
        // A port nobody listens on: refused at once, so the store gives up when its 1 s timeout has passed.
        using var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        probe.Start();
        var port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        await using var store = EtcdStore.Open(new EtcdStoreOptions
        {
            Endpoints = [new Uri($"http://127.0.0.1:{port}")],
            Username = "gh",
            Password = "s3cret",
            RequestTimeout = TimeSpan.FromSeconds(1),
        });

        var ex = await Assert.ThrowsAsync<StoreUnavailableException>(() => store.GetAsync("/gatehouse/v1/x").AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains($"http://127.0.0.1:{port}", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret", ex.ToString(), StringComparison.Ordinal);
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => store.ListAsync("/gatehouse/v1/", cancelled.Token).AsTask());
    }

    [Theory]
    [InlineData("http://127.0.0.1:2379", "", null)]
    [InlineData("http://127.0.0.1:2379/", "/a/b", null)]
    [InlineData("unix:///run/etcd.sock", "", "is not an http:// or https:// URL")]
    [InlineData("http://127.0.0.1:2379?x=1", "", "has a path, query or fragment")]
    [InlineData("http://127.0.0.1:2379", "/trailing/", "must start with '/' and not end with one")]
    [InlineData("http://127.0.0.1:2379", "/with space", "has control or white-space characters")]
    public void EtcdStoreOptions_Validate_NamesTheProblem(string endpoint, string prefix, string? problem)
    {
        var options = new EtcdStoreOptions { Endpoints = [new Uri(endpoint)], KeyPrefix = prefix };
        if (problem is null)
        {
            options.Validate();
        }
        else
        {
            Assert.Contains(problem, Assert.Throws<ArgumentException>(options.Validate).Message, StringComparison.Ordinal);
        }
    }
}
