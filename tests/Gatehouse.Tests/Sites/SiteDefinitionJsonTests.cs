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

    [Fact]
    public void Serialize_SiteWithClientAuthAndHsts_RoundTripsWithoutDerivedFields()
    {
        var site = new SiteDefinition
        {
            Id = "m.example", Hosts = ["m.example"], Backends = ["http://10.0.0.1"],
            ClientAuth = new ClientAuthPolicy { Mode = ClientAuthMode.Optional, CaPem = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n", AllowedSans = ["dns:a.example"], RequiredPaths = ["/admin"] },
            Hsts = new HstsPolicy { MaxAgeSeconds = 600, IncludeSubdomains = true },
        };
        var json = Encoding.UTF8.GetString(CoreJson.Serialize(site));
        Assert.Contains("\"mode\":\"Optional\"", json, StringComparison.Ordinal);
        Assert.DoesNotContain("headerValue", json, StringComparison.Ordinal);
        var read = CoreJson.Deserialize<SiteDefinition>(Entry(json));
        Assert.True(site.SameAs(read));
        Assert.Equal("max-age=600; includeSubDomains", read.Hsts!.HeaderValue);
    }

    private static StoreEntry Entry(string json) => new("/gatehouse/v1/sites/x", Encoding.UTF8.GetBytes(json), 1, 1, 1, 0);
}
