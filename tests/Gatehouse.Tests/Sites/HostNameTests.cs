using Gatehouse.Sites;

namespace Gatehouse.Tests.Sites;

public sealed class HostNameTests
{
    [Theory]
    [InlineData("example.com", "example.com")]
    [InlineData("WWW.Example.COM", "www.example.com")]
    [InlineData("localhost", "localhost")]
    [InlineData("*.example.com", "*.example.com")]
    [InlineData("a-b.c-d.example", "a-b.c-d.example")]
    [InlineData("xn--bcher-kva.example", "xn--bcher-kva.example")]
    [InlineData("3com.net", "3com.net")]
    public void TryNormalize_ValidName_ReturnsLowerCase(string input, string expected)
    {
        Assert.True(HostName.TryNormalize(input, out var normalized, out var error), error);
        Assert.Equal(expected, normalized);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("a..b", "empty label")]
    [InlineData("-a.com", "hyphen")]
    [InlineData("a-.com", "hyphen")]
    [InlineData("a_b.com", "'_' is not allowed")]
    [InlineData("www.*.example.com", "leftmost")]
    [InlineData("w*.example.com", "whole leftmost label")]
    [InlineData("*.com", "top-level")]
    [InlineData("example.com.", "ends with a dot")]
    [InlineData("127.0.0.1", "IP address")]
    [InlineData("1.2.3.4.5", "all digits")]
    [InlineData("bücher.example", "xn--")]
    public void TryNormalize_InvalidName_SaysWhy(string input, string reason)
    {
        Assert.False(HostName.TryNormalize(input, out _, out var error));
        Assert.Contains(reason, error, StringComparison.Ordinal);
    }

    [Fact]
    public void TryNormalize_LongLabelsAndNames_AreRefused()
    {
        Assert.True(HostName.TryNormalize(new string('a', 63) + ".com", out _, out _));
        Assert.False(HostName.TryNormalize(new string('a', 64) + ".com", out _, out var labelError));
        Assert.Contains("longer than 63", labelError, StringComparison.Ordinal);
        var name = string.Join('.', Enumerable.Repeat(new string('a', 62), 5));
        Assert.False(HostName.TryNormalize(name, out _, out var nameError));
        Assert.Contains("longer than 253", nameError, StringComparison.Ordinal);
    }
}
