using Gatehouse.Sites;

namespace Gatehouse.Tests.Sites;

public sealed class SiteValidatorTests
{
    [Fact]
    public void Validate_SeveralBadSites_ReportsEveryErrorWithItsPath()
    {
        var errors = new List<ValidationError>();
        var sites = SiteValidator.Validate(
        [
            new("sites:0", ["good.example", "Shared.example"], ["http://10.0.0.1:8080"], []),
            new("sites:1", ["bad..example", "shared.example"], ["ftp://x", "not a url"], ["nope"]),
            new("sites:2", [], [], []),
        ], SiteSource.Config, new HashSet<string> { "local" }, errors);

        Assert.Single(sites);
        Assert.Equal("good.example", sites[0].Id);
        Assert.Equal(["good.example", "shared.example"], sites[0].Hosts);
        var paths = errors.Select(e => e.Path).ToList();
        Assert.Equal(["sites:1:hosts:0", "sites:1:hosts:1", "sites:1:backends:0", "sites:1:backends:1", "sites:1:issuers:0", "sites:2:hosts", "sites:2:backends"], paths);
        Assert.Contains("already claimed by sites:0", errors[1].Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://10.0.0.5:8080", true)]
    [InlineData("https://backend.internal/base", true)]
    [InlineData("http://user:pw@host", false)]
    [InlineData("http://host/?q=1", false)]
    [InlineData("unix:/run/app.sock", false)]
    [InlineData("/relative", false)]
    public void TryValidateBackend_ChecksSchemeHostAndParts(string url, bool valid)
    {
        Assert.Equal(valid, SiteValidator.TryValidateBackend(url, out _, out _));
    }

    [Fact]
    public void Validate_PassthroughSite_NormalizesTcpBackendsAndKeepsModeAndProxyProtocol()
    {
        var errors = new List<ValidationError>();
        var sites = SiteValidator.Validate(
            [new("sites:0", ["Pass.Example"], ["10.0.0.5:443", "tcp://Backend.Internal:8443", "[2001:DB8::5]:443"], [], Mode: "Passthrough", ProxyProtocol: "V2")],
            SiteSource.Config, new HashSet<string> { "local" }, errors);

        Assert.Empty(errors);
        var site = Assert.Single(sites);
        Assert.Equal(SiteMode.Passthrough, site.Mode);
        Assert.Equal(ProxyProtocolVersion.V2, site.ProxyProtocol);
        Assert.Equal(["tcp://10.0.0.5:443", "tcp://backend.internal:8443", "tcp://[2001:db8::5]:443"], site.Backends);
    }

    [Fact]
    public void Validate_DefaultMode_IsOffloadWithoutProxyProtocol()
    {
        var errors = new List<ValidationError>();
        var site = Assert.Single(SiteValidator.Validate([new("sites:0", ["a.example"], ["http://10.0.0.1"], [])], SiteSource.Api, null, errors));
        Assert.Equal((SiteMode.Offload, ProxyProtocolVersion.None), (site.Mode, site.ProxyProtocol));
    }

    [Fact]
    public void Validate_ModeErrors_NameTheFieldAndSayWhy()
    {
        var errors = new List<ValidationError>();
        var sites = SiteValidator.Validate(
        [
            new("sites:0", ["a.example"], ["http://10.0.0.1"], [], Mode: "tunnel", ProxyProtocol: "v3"),
            new("sites:1", ["b.example"], ["http://10.0.0.1", "tcp://10.0.0.1:443"], [], ProxyProtocol: "v1"),
            new("sites:2", ["c.example"], ["https://10.0.0.1", "10.0.0.1"], ["local"], KeyType: "ec384", Profile: "shortlived", Mode: "passthrough"),
            new("sites:3", ["d.example"], [], [], Mode: "passthrough"),
        ], SiteSource.Config, new HashSet<string> { "local" }, errors);

        Assert.Empty(sites);
        var byPath = errors.ToDictionary(e => e.Path, e => e.Message);
        Assert.Equal(
            ["sites:0:mode", "sites:0:proxyProtocol", "sites:1:proxyProtocol", "sites:1:backends:1", "sites:2:backends:0", "sites:2:backends:1", "sites:2:issuers", "sites:2:keyType", "sites:2:profile", "sites:3:backends"],
            errors.Select(e => e.Path));
        Assert.Contains("not a site mode (offload, reencrypt, passthrough)", byPath["sites:0:mode"], StringComparison.Ordinal);
        Assert.Contains("not a PROXY protocol version (none, v1, v2)", byPath["sites:0:proxyProtocol"], StringComparison.Ordinal);
        Assert.Contains("only a passthrough site sends a PROXY protocol header", byPath["sites:1:proxyProtocol"], StringComparison.Ordinal);
        Assert.Contains("only a passthrough site", byPath["sites:1:backends:1"], StringComparison.Ordinal);
        Assert.Contains("is a URL; a passthrough site's backend is host:port", byPath["sites:2:backends:0"], StringComparison.Ordinal);
        Assert.Contains("has no port", byPath["sites:2:backends:1"], StringComparison.Ordinal);
        Assert.Contains("no certificate at the edge", byPath["sites:2:issuers"], StringComparison.Ordinal);
        Assert.Contains("host:port or tcp://host:port", byPath["sites:3:backends"], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("10.0.0.5:443", "tcp://10.0.0.5:443")]
    [InlineData("TCP://10.0.0.5:443", "tcp://10.0.0.5:443")]
    [InlineData(" backend:1 ", "tcp://backend:1")]
    [InlineData("[::1]:65535", "tcp://[::1]:65535")]
    [InlineData("[::ffff:10.0.0.1]:443", "tcp://[::ffff:10.0.0.1]:443")]
    [InlineData("10.0.0.5", null)] // no port
    [InlineData("10.0.0.5:0", null)]
    [InlineData("10.0.0.5:65536", null)]
    [InlineData("10.0.0.5:0443", null)]
    [InlineData("10.0.0.5:443/path", null)]
    [InlineData("10.5:443", null)] // not a dotted quad
    [InlineData("2001:db8::5:443", null)] // IPv6 needs brackets
    [InlineData("[fe80::1%eth0]:443", null)]
    [InlineData("[10.0.0.1]:443", null)]
    [InlineData("*.backend:443", null)]
    [InlineData("bad..name:443", null)]
    [InlineData("http://10.0.0.5:443", null)]
    [InlineData("", null)]
    [InlineData(null, null)]
    public void TryValidateTcpBackend_AcceptsHostPortOnly(string? value, string? expected)
    {
        Assert.Equal(expected is not null, SiteValidator.TryValidateTcpBackend(value, out var backend, out var error));
        Assert.Equal(expected, backend);
        Assert.Equal(expected is null, error is not null);
    }

    [Fact]
    public void SameAs_DiffersByModeOrProxyProtocol()
    {
        var site = new SiteDefinition { Id = "a.example", Hosts = ["a.example"], Backends = ["tcp://10.0.0.1:443"], Mode = SiteMode.Passthrough };
        Assert.True(site.SameAs(site with { Hosts = ["a.example"] }));
        Assert.False(site.SameAs(site with { ProxyProtocol = ProxyProtocolVersion.V1 }));
        Assert.False(site.SameAs(site with { Mode = SiteMode.Offload }));
    }
}
