using System.Text;
using Gatehouse.Sites;
using Gatehouse.Storage;

namespace Gatehouse.Tests.Sites;

public sealed class SiteDefinitionJsonTests
{
    [Fact]
    public void Deserialize_RecordStoredBeforeModesExisted_IsAnOffloadSite()
    {
        var stored = """{"id":"old.example","hosts":["old.example"],"backends":["http://10.0.0.1:8080"],"issuers":[],"source":"Config"}""";
        var site = CoreJson.Deserialize<SiteDefinition>(Entry(stored));
        Assert.Equal((SiteMode.Offload, ProxyProtocolVersion.None, SiteSource.Config), (site.Mode, site.ProxyProtocol, site.Source));
    }

    [Fact]
    public void Serialize_PassthroughSite_RoundTripsModeAndProxyProtocolByName()
    {
        var site = new SiteDefinition { Id = "pass.example", Hosts = ["pass.example"], Backends = ["tcp://10.0.0.1:443"], Mode = SiteMode.Passthrough, ProxyProtocol = ProxyProtocolVersion.V2 };
        var json = Encoding.UTF8.GetString(CoreJson.Serialize(site));
        Assert.Contains("\"mode\":\"Passthrough\"", json, StringComparison.Ordinal);
        Assert.Contains("\"proxyProtocol\":\"V2\"", json, StringComparison.Ordinal);
        Assert.True(site.SameAs(CoreJson.Deserialize<SiteDefinition>(Entry(json))));
    }

    private static StoreEntry Entry(string json) => new("/gatehouse/v1/sites/x", Encoding.UTF8.GetBytes(json), 1, 1, 1, 0);
}
