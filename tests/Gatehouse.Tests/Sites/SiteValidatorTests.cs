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
}
