using System.Net;
using Gatehouse.Edge.Passthrough;
using Gatehouse.Sites;
using Microsoft.Extensions.Time.Testing;

namespace Gatehouse.Tests.Edge;

public sealed class PassthroughSiteTests
{
    [Fact]
    public void NextStart_GoesRoundRobin()
    {
        var site = new PassthroughSite(Site("tcp://10.0.0.1:443", "tcp://10.0.0.2:443", "tcp://10.0.0.3:443"));
        Assert.Equal([0, 1, 2, 0, 1], Enumerable.Range(0, 5).Select(_ => site.NextStart()));
    }

    [Theory]
    [InlineData("tcp://10.0.0.1:443", "10.0.0.1:443")]
    [InlineData("tcp://[2001:db8::5]:8443", "[2001:db8::5]:8443")]
    public void Backend_IpAddress_IsAnIpEndPoint(string address, string endPoint)
    {
        Assert.Equal(IPEndPoint.Parse(endPoint), new PassthroughBackend(address).EndPoint);
    }

    [Fact]
    public void Backend_HostName_IsResolvedPerConnection()
    {
        var endPoint = Assert.IsType<DnsEndPoint>(new PassthroughBackend("tcp://backend.internal:443").EndPoint);
        Assert.Equal(("backend.internal", 443), (endPoint.Host, endPoint.Port));
    }

    [Theory]
    [InlineData("http://10.0.0.1:443")]
    [InlineData("tcp://10.0.0.1")]
    [InlineData("tcp://10.0.0.1:0")]
    public void Backend_NotNormalized_IsRefused(string address)
    {
        Assert.Throws<ArgumentException>(() => new PassthroughBackend(address));
    }

    [Fact]
    public void Backend_Failure_RestsForTheBackoffOnly()
    {
        var time = new FakeTimeProvider();
        var backend = new PassthroughBackend("tcp://10.0.0.1:443");
        var backoff = TimeSpan.FromSeconds(10);
        Assert.False(backend.IsResting(time, backoff));
        Assert.True(backend.MarkFailed(time)); // first failure: worth a warning
        Assert.False(backend.MarkFailed(time)); // still failing: not again
        Assert.True(backend.IsResting(time, backoff));
        time.Advance(TimeSpan.FromSeconds(11));
        Assert.False(backend.IsResting(time, backoff));
        Assert.True(backend.MarkWorking());
        Assert.False(backend.MarkWorking());
    }

    private static SiteDefinition Site(params string[] backends) =>
        new() { Id = "pass.example", Hosts = ["pass.example"], Backends = backends, Mode = SiteMode.Passthrough };
}
