using dotnet_etcd;
using Etcdserverpb;
using Gatehouse.Storage.Etcd;
using Grpc.Net.Client;

namespace Gatehouse.IntegrationTests.Infrastructure;

/// <summary>
/// One 3-member <see cref="EtcdCluster"/> for every test in the <see cref="EtcdCollection"/>. The tests run one
/// after the other (their revision checks need a cluster nobody else writes to), each under its own key prefix.
/// </summary>
public sealed class EtcdFixture : IAsyncLifetime
{
    public EtcdCluster Cluster { get; private set; } = null!;

    /// <summary>A key prefix no other test uses.</summary>
    public static string NewPrefix() => "/it-" + Guid.NewGuid().ToString("N")[..12];

    public async Task InitializeAsync() => Cluster = await EtcdCluster.StartAsync(3);

    public async Task DisposeAsync() => await Cluster.DisposeAsync();

    /// <summary>Opens a store on the cluster (every member, or <paramref name="endpoints"/> in that order).</summary>
    public EtcdStore OpenStore(string prefix, TimeSpan? timeout = null, IReadOnlyList<Uri>? endpoints = null) => EtcdStore.Open(new EtcdStoreOptions
    {
        Endpoints = endpoints ?? Cluster.Endpoints,
        KeyPrefix = prefix,
        RequestTimeout = timeout ?? EtcdStoreOptions.DefaultRequestTimeout,
    });

    /// <summary>Brings every member back (after a fault test) and waits until the cluster is healthy.</summary>
    public Task RestoreAsync() => Cluster.StartAllAsync();

    /// <summary>Revokes every lease in the cluster, so a lease a test left behind cannot expire (and change the
    /// revision) during the next test.</summary>
    public async Task RevokeAllLeasesAsync()
    {
        using var channel = GrpcChannel.ForAddress(Cluster.Endpoints[0]);
        using var client = new EtcdClient(channel.CreateCallInvoker());
        var leases = client.GetConnection().LeaseClient;
        var list = await leases.LeaseLeasesAsync(new LeaseLeasesRequest(), deadline: DateTime.UtcNow.AddSeconds(10));
        foreach (var lease in list.Leases)
        {
            try
            {
                await leases.LeaseRevokeAsync(new LeaseRevokeRequest { ID = lease.ID }, deadline: DateTime.UtcNow.AddSeconds(10));
            }
            catch (Grpc.Core.RpcException ex) when (ex.StatusCode == Grpc.Core.StatusCode.NotFound)
            {
                // expired meanwhile
            }
        }
    }
}

[CollectionDefinition(Name)]
public sealed class EtcdCollection : ICollectionFixture<EtcdFixture>
{
    public const string Name = "etcd";
}
