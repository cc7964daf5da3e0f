using Gatehouse.Sites;

namespace Gatehouse.Tests.Sites;

public sealed class HostTableTests
{
    private static readonly HostTable<string> Table = new(
    [
        new("example.com", "apex"),
        new("www.example.com", "www"),
        new("*.example.com", "wild"),
        new("*.b.example.com", "wild-b"),
        new("x.b.example.com", "exact-x"),
    ]);

    [Theory]
    [InlineData("example.com", "apex")]
    [InlineData("www.example.com", "www")]
    [InlineData("WWW.EXAMPLE.com", "www")]
    [InlineData("api.example.com", "wild")]
    [InlineData("API.Example.Com", "wild")]
    [InlineData("a.b.example.com", "wild-b")]
    [InlineData("x.b.example.com", "exact-x")]
    [InlineData("b.example.com", "wild")]
    public void TryMatch_KnownName_PicksExactThenTheClosestWildcard(string name, string expected)
    {
        Assert.True(Table.TryMatch(name, out var value));
        Assert.Equal(expected, value);
    }

    [Theory]
    [InlineData("")]
    [InlineData("example.org")]
    [InlineData("a.c.example.com")] // one-level wildcards only
    [InlineData(".example.com")]
    [InlineData("example.com.evil")]
    [InlineData("com")]
    public void TryMatch_UnknownName_FindsNothing(string name)
    {
        Assert.False(Table.TryMatch(name, out _));
    }
}
