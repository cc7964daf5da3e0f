using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.IntegrationTests.Infrastructure;

/// <summary>One `gatehouse serve` of the cluster: its directory, ports, process and admin API.</summary>
internal sealed class ClusterMember(int number, string directory, int httpsPort, int adminPort, GatehouseProcess process, AdminClient admin)
{
    public int Number { get; } = number;

    public string Directory { get; } = directory;

    public string DataDirectory => Path.Combine(Directory, "data");

    public int HttpsPort { get; } = httpsPort;

    public int AdminPort { get; } = adminPort;

    public GatehouseProcess Process { get; } = process;

    public AdminClient Admin { get; } = admin;
}

/// <summary>
/// <c>count</c> `gatehouse serve` processes over one etcd prefix, each with its own directory (config, data
/// directory, log) and free loopback ports. Instances that share a store share its master key and admin token: the
/// first one is started and made ready, then its <c>master.key</c> and <c>admin.token</c> are copied into the other
/// data directories (0700, files 0600) before those start, as SharedEtcdStoreTests does in-process.
/// </summary>
internal sealed class GatehouseCluster : IAsyncDisposable
{
    private static readonly UnixFileMode DirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private static readonly UnixFileMode SecretMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private static readonly string[] SharedFiles = ["master.key", "admin.token"];

    private readonly List<ClusterMember> _members = [];

    public IReadOnlyList<ClusterMember> Members => _members;

    /// <summary>The local CA's root (one for all instances: the CA lives in the store).</summary>
    public X509Certificate2 Root { get; private set; } = null!;

    public static async Task<GatehouseCluster> StartAsync(string dll, string work, int count, IReadOnlyList<Uri> endpoints, string prefix, StartedProcesses started, TimeSpan readyTimeout)
    {
        var store = $"store: {{type: etcd, etcd: {{endpoints: [{string.Join(", ", endpoints.Select(e => e.GetLeftPart(UriPartial.Authority)))}], prefix: {prefix}, timeout: 5s}}}}";
        var cluster = new GatehouseCluster();
        try
        {
            var first = await StartMemberAsync(dll, work, 1, store, started, readyTimeout);
            cluster._members.Add(first);
            cluster.Root = X509Certificate2.CreateFromPem(await File.ReadAllTextAsync(Path.Combine(first.DataDirectory, "local-ca-root.pem")));
            var others = Enumerable.Range(2, count - 1).Select(number =>
            {
                var data = Path.Combine(MemberDirectory(work, number), "data");
                Directory.CreateDirectory(data, DirectoryMode);
                foreach (var name in SharedFiles)
                {
                    File.Copy(Path.Combine(first.DataDirectory, name), Path.Combine(data, name));
                    File.SetUnixFileMode(Path.Combine(data, name), SecretMode);
                }

                return StartMemberAsync(dll, work, number, store, started, readyTimeout);
            }).ToList();
            try
            {
                await Task.WhenAll(others);
            }
            finally
            {
                cluster._members.AddRange(others.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result)); // stopped below on failure
            }

            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(_members.Select(async m =>
        {
            m.Admin.Dispose();
            await m.Process.DisposeAsync();
        }));
    }

    private static string MemberDirectory(string work, int number) => Path.Combine(work, "gatehouse" + number.ToString(CultureInfo.InvariantCulture));

    private static async Task<ClusterMember> StartMemberAsync(string dll, string work, int number, string store, StartedProcesses started, TimeSpan readyTimeout)
    {
        var directory = MemberDirectory(work, number);
        Directory.CreateDirectory(directory);
        int httpsPort = Ports.Free(), httpPort = Ports.Free(), adminPort = Ports.Free();
        var config = Path.Combine(directory, "gatehouse.yaml");
        await File.WriteAllTextAsync(config, $"""
            dataDirectory: ./data
            edge: {"{"}address: 127.0.0.1, httpsPort: {httpsPort}, httpPort: {httpPort}{"}"}
            admin: {"{"}address: 127.0.0.1, port: {adminPort}{"}"}
            {store}
            sites: []

            """);
        var process = GatehouseProcess.Start(dll, directory, config, Path.Combine(directory, "gatehouse.log"));
        started.Add(process.Pid, "dotnet");
        try
        {
            var admin = await AdminClient.ConnectAsync(process, Path.Combine(directory, "data"), adminPort, readyTimeout);
            return new ClusterMember(number, directory, httpsPort, adminPort, process, admin);
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }
    }
}
