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

    [Fact]
    public void With_ReleasesAndClaimsNames_LikeATableBuiltFromTheResult()
    {
        var changed = Table.With(
            [new("www.example.com", "www"), new("*.b.example.com", "wild-b")],
            [new("new.example.com", "new"), new("*.c.example.com", "wild-c")]);

        Assert.NotNull(changed);
        Assert.Equal(Table.Count, changed.Count);
        Assert.True(changed.TryMatch("new.example.com", out var value));
        Assert.Equal("new", value);
        Assert.True(changed.TryMatch("a.c.example.com", out value));
        Assert.Equal("wild-c", value);
        Assert.True(changed.TryMatch("www.example.com", out value));
        Assert.Equal("wild", value); // released: the wildcard covers it now
        Assert.False(changed.TryMatch("a.b.example.com", out _)); // one level only: *.example.com does not cover it
        Assert.True(Table.TryMatch("www.example.com", out value)); // the original is unchanged
        Assert.Equal("www", value);
    }

    [Fact]
    public void With_ANameHeldByAnotherValue_OrATableWithConflicts_IsNull()
    {
        Assert.Null(Table.With([new("www.example.com", "not-www")], []));
        Assert.Null(Table.With([], [new("EXAMPLE.com", "another-apex")]));
        Assert.NotNull(Table.With([], [new("example.com", "apex")])); // claiming a name again with its own value is no change

        var conflicting = new HostTable<string>([new("a.example.com", "one"), new("a.example.com", "two")]);
        Assert.True(conflicting.HasConflicts);
        Assert.False(Table.HasConflicts);
        Assert.Null(conflicting.With([], [new("b.example.com", "three")]));
    }
}
