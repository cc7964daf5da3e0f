using System.Net;
using Gatehouse.Hosting;
using Gatehouse.Sites;

namespace Gatehouse.Tests.Hosting;

public sealed class GatehouseConfigurationTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    private string Write(string yaml)
    {
        var path = Path.Combine(_directory.Path, "gatehouse.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    [Fact]
    public void Load_ValidFile_ReadsEverySetting()
    {
        var path = Write("""
            dataDirectory: ./state
            edge: {address: 127.0.0.1, httpsPort: 9443, httpPort: 9080, handshakeTimeout: 5s}
            admin: {port: 9444}
            localCa: {leafLifetime: 12h}
            welcome: {port: 9090}
            sites:
              - hosts: [App.Example.com, "*.apps.example.com"]
                backends: [http://10.0.0.1:8080, http://10.0.0.2:8080]
            """);
        var errors = new List<string>();
        var options = new GatehouseConfiguration(path, [], new Dictionary<string, string?>()).Load(errors);
        Assert.Empty(errors);
        Assert.NotNull(options);
        Assert.Equal(Path.Combine(_directory.Path, "state"), options.DataDirectory);
        Assert.Equal(IPAddress.Loopback, options.Edge.Address);
        Assert.Equal(9443, options.Edge.HttpsPort);
        Assert.Equal(9080, options.Edge.HttpPort);
        Assert.Equal(TimeSpan.FromSeconds(5), options.Edge.HandshakeTimeout);
        Assert.Equal(9444, options.Admin.Port);
        Assert.Equal(TimeSpan.FromHours(12), options.LocalCa.LeafLifetime);
        Assert.Equal(9090, options.WelcomePort);
        var (site, sitePath) = Assert.Single(options.Sites);
        Assert.Equal("sites:0", sitePath);
        Assert.Equal("app.example.com", site.Id);
        Assert.Equal(["app.example.com", "*.apps.example.com"], site.Hosts);
        Assert.Equal(2, site.Backends.Count);
    }

    [Fact]
    public void Load_LoggingAndLockSettings_AreReadAndBadValuesNamed()
    {
        var errors = new List<string>();
        var options = new GatehouseConfiguration(Write("logging: {level: Debug}\ncertificates: {lockTtl: 30s}\n"), [], new Dictionary<string, string?>()).Load(errors);
        Assert.Empty(errors);
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Debug, options!.LogLevel);
        Assert.Equal(TimeSpan.FromSeconds(30), options.LockTtl);

        var defaults = new GatehouseConfiguration(Write("sites: []\n"), [], new Dictionary<string, string?>()).Load(errors);
        Assert.Equal((Microsoft.Extensions.Logging.LogLevel.Information, TimeSpan.FromSeconds(15)), (defaults!.LogLevel, defaults.LockTtl));

        Assert.Null(new GatehouseConfiguration(Write("logging: {level: loud, format: text}\ncertificates: {lockTtl: 1s}\n"), [], new Dictionary<string, string?>()).Load(errors));
        Assert.Contains(errors, e => e.Contains("logging:level: 'loud' is not a level", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("logging:format: unknown key", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("certificates:lockTtl", StringComparison.Ordinal));
    }

    [Fact]
    public void Load_PassthroughSite_ReadsModeProxyProtocolAndIdleTimeout()
    {
        var path = Write("""
            edge: {passthroughIdleTimeout: 15m}
            sites:
              - hosts: [pass.example.com]
                mode: passthrough
                proxyProtocol: v1
                backends: [10.0.0.1:443, "tcp://10.0.0.2:8443"]
              - hosts: [app.example.com]
                backends: [http://10.0.0.1:8080]
            """);
        var errors = new List<string>();
        var options = new GatehouseConfiguration(path, [], new Dictionary<string, string?>()).Load(errors);
        Assert.Empty(errors);
        Assert.Equal(TimeSpan.FromMinutes(15), options!.Edge.PassthroughIdleTimeout);
        var passthrough = options.Sites[0].Site;
        Assert.Equal((SiteMode.Passthrough, ProxyProtocolVersion.V1), (passthrough.Mode, passthrough.ProxyProtocol));
        Assert.Equal(["tcp://10.0.0.1:443", "tcp://10.0.0.2:8443"], passthrough.Backends);
        Assert.Equal(SiteMode.Offload, options.Sites[1].Site.Mode);
        Assert.Equal(TimeSpan.FromHours(1), new EdgeOptions().PassthroughIdleTimeout);
    }

    [Fact]
    public void Load_BadPassthroughSite_NamesFileAndKey()
    {
        var path = Write("""
            edge: {passthroughIdleTimeout: 0s}
            sites:
              - hosts: [pass.example.com]
                mode: passthrough
                proxyProtocol: v9
                keyType: ec384
                backends: [http://10.0.0.1]
            """);
        var errors = new List<string>();
        Assert.Null(new GatehouseConfiguration(path, [], new Dictionary<string, string?>()).Load(errors));
        Assert.Contains(errors, e => e.StartsWith("gatehouse.yaml: edge:passthroughIdleTimeout: 0s is outside", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("gatehouse.yaml: sites:0:proxyProtocol: 'v9' is not a PROXY protocol version", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("gatehouse.yaml: sites:0:keyType: a passthrough site has no certificate at the edge", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("gatehouse.yaml: sites:0:backends:0: 'http://10.0.0.1' is a URL", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("tlsEngine", null, "OpenSsl", null)]
    [InlineData("tlsEngine", "dotnet", "DotNet", null)]
    [InlineData("tlsEngine", "OpenSSL", "OpenSsl", null)]
    [InlineData("tlsEngine", "schannel", null, "edge:tlsEngine: 'schannel' is not a TLS engine: use openssl or dotnet")]
    [InlineData("socketCompletions", null, "Pool", null)]
    [InlineData("socketCompletions", "pool", "Pool", null)]
    [InlineData("socketCompletions", "Inline", "Inline", null)]
    [InlineData("socketCompletions", "epoll", null, "edge:socketCompletions: 'epoll' is not where socket completions run: use pool or inline")]
    public void Load_EdgeChoice_ParsesOrNamesTheKey(string key, string? value, string? expected, string? error)
    {
        var path = Write(value is null ? "edge: {httpsPort: 8443}\n" : $"edge: {{{key}: {value}}}\n");
        var errors = new List<string>();
        var options = new GatehouseConfiguration(path, [], new Dictionary<string, string?>()).Load(errors);
        if (error is null)
        {
            Assert.Empty(errors);
            Assert.Equal(expected, key == "tlsEngine" ? options!.Edge.TlsEngine.ToString() : options!.Edge.SocketCompletions.ToString());
        }
        else
        {
            Assert.Null(options);
            Assert.Equal(["gatehouse.yaml: " + error], errors);
        }
    }

    [Theory]
    [InlineData("App.Example.COM", "app.example.com", null)]
    [InlineData("'*.example.com'", null, "edge:defaultSite: '*.example.com' is a wildcard")]
    [InlineData("bad_name!", null, "edge:defaultSite: ")]
    public void Load_DefaultSite_NormalizesOrNamesTheKey(string value, string? expected, string? error)
    {
        var path = Write($"edge: {{defaultSite: {value}}}\n");
        var errors = new List<string>();
        var options = new GatehouseConfiguration(path, [], new Dictionary<string, string?>()).Load(errors);
        if (error is null)
        {
            Assert.Empty(errors);
            Assert.Equal(expected, options!.Edge.DefaultSite);
        }
        else
        {
            Assert.Null(options);
            Assert.Contains(errors, e => e.StartsWith("gatehouse.yaml: " + error, StringComparison.Ordinal));
        }
    }

    [Fact]
    public void Load_ManyErrors_ReportsAllOfThemWithFileAndKey()
    {
        var unwritable = Path.Combine(_directory.Path, "file-not-dir");
        File.WriteAllText(unwritable, "");
        var path = Write($"""
            dataDirectory: {unwritable}
            edge: {"{"}httpsPort: 70000, httpPort: 8080, handshakeTimeout: soon{"}"}
            admin: {"{"}port: 8080{"}"}
            tls: {"{"}x: 1{"}"}
            sites:
              - hosts: [good.example, "bad..example"]
                backends: [http://10.0.0.1]
              - hosts: [good.example]
                backends: ["not a url"]
            """);
        var errors = new List<string>();
        var options = new GatehouseConfiguration(path, [], new Dictionary<string, string?>()).Load(errors);
        Assert.Null(options);
        string[] expected =
        [
            "gatehouse.yaml: tls: unknown key",
            "gatehouse.yaml: dataDirectory: ",
            "gatehouse.yaml: edge:httpsPort: '70000' is not a port number",
            "gatehouse.yaml: edge:handshakeTimeout: 'soon' is not a duration",
            "gatehouse.yaml: sites:0:hosts:1: 'bad..example' is not a valid host name",
            "gatehouse.yaml: sites:1:hosts:0: 'good.example' is already claimed by sites:0",
            "gatehouse.yaml: sites:1:backends:0: 'not a url' is not an absolute URL",
            "gatehouse.yaml: admin:port: port 8080 is also used by edge:httpPort",
        ];
        foreach (var prefix in expected)
        {
            Assert.Contains(errors, e => e.StartsWith(prefix, StringComparison.Ordinal));
        }

        Assert.Equal(expected.Length, errors.Count);
    }

    [Fact]
    public void Load_EnvironmentAndCommandLine_OverrideTheFileAndAreNamedInErrors()
    {
        var path = Write("edge: {httpsPort: 8443}\n");
        var environment = new Dictionary<string, string?> { ["GATEHOUSE_EDGE__HTTPSPORT"] = "9445", ["GATEHOUSE_ADMIN__PORT"] = "x" };
        var errors = new List<string>();
        Assert.Null(new GatehouseConfiguration(path, ["--edge:httpPort=zero"], environment).Load(errors));
        Assert.Contains("environment: admin:port: 'x' is not a port number (1–65535)", errors);
        Assert.Contains("command line: edge:httpPort: 'zero' is not a port number (1–65535)", errors);

        errors.Clear();
        environment.Remove("GATEHOUSE_ADMIN__PORT");
        var options = new GatehouseConfiguration(path, ["--edge:httpPort=9080"], environment).Load(errors);
        Assert.Empty(errors);
        Assert.Equal(9445, options!.Edge.HttpsPort);
        Assert.Equal(9080, options.Edge.HttpPort);
    }

    [Fact]
    public void Load_UnrelatedGatehouseEnvironmentVariables_AreIgnored()
    {
        var environment = new Dictionary<string, string?> { ["GATEHOUSE_ADMIN_TOKEN"] = "x", ["GATEHOUSE_DLL"] = "/x.dll", ["GATEHOUSE_EDGE__FOO"] = "1" };
        var errors = new List<string>();
        Assert.NotNull(new GatehouseConfiguration(Write("edge: {httpsPort: 8443}\n"), [], environment).Load(errors));
        Assert.Empty(errors);
        Assert.Null(new GatehouseConfiguration(Write("edge: {httpsPort: 8443}\n"), ["--edge:foo=1"], environment).Load(errors));
        Assert.Equal(["command line: edge:foo: unknown key (known: address, httpsPort, httpPort, publicHttpsPort, handshakeTimeout, passthroughIdleTimeout, defaultSite, tlsEngine, socketCompletions)"], errors);
    }

    [Theory]
    [InlineData("edge: [unclosed", "line ")]
    [InlineData("- just\n- a list\n", "top level must be a mapping")]
    [InlineData("edge: {httpsPort: 1}\nEdge: {httpPort: 2}\n", "given twice")]
    public void Load_BrokenYaml_SaysWhereAndWhat(string yaml, string expected)
    {
        var errors = new List<string>();
        Assert.Null(new GatehouseConfiguration(Write(yaml), [], new Dictionary<string, string?>()).Load(errors));
        var error = Assert.Single(errors);
        Assert.Contains("gatehouse.yaml", error, StringComparison.Ordinal);
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("7d", 7 * 24 * 3600)]
    [InlineData("12h", 12 * 3600)]
    [InlineData("30m", 1800)]
    [InlineData("1.5s", 1.5)]
    [InlineData("250ms", 0.25)]
    [InlineData("1.00:00:00", 86400)]
    public void Duration_TryParse_ReadsUnits(string text, double seconds)
    {
        Assert.True(Duration.TryParse(text, out var value));
        Assert.Equal(seconds, value.TotalSeconds, 3);
    }
}
