using Gatehouse.Acme;

namespace Gatehouse.Tests.Acme;

public sealed class AcmeHttpHeadersTests
{
    private static readonly DateTimeOffset Now = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly Uri Base = new("https://acme.test/cert/1");

    // RFC 9110 §10.2.3 and §5.6.7: delay-seconds, and the three HTTP-date forms.
    [Theory]
    [InlineData("120", 120)]
    [InlineData(" 0 ", 0)]
    [InlineData("Sun, 01 Mar 2026 12:00:30 GMT", 30)]
    [InlineData("Sunday, 01-Mar-26 12:01:00 GMT", 60)]
    [InlineData("Sun Mar  1 12:02:00 2026", 120)]
    [InlineData("Sun, 01 Mar 2026 11:00:00 GMT", 0)]
    [InlineData("99999999999999999999999", 365 * 24 * 3600)]
    public void TryParseRetryAfter_Valid_DelayFromNow(string value, int seconds)
    {
        Assert.True(AcmeHttpHeaders.TryParseRetryAfter(value, Now, out var delay));
        Assert.Equal(TimeSpan.FromSeconds(seconds), delay);
    }

    [Theory]
    [InlineData("")]
    [InlineData("-5")]
    [InlineData("soon")]
    [InlineData("12s")]
    [InlineData("2026-03-01T12:00:00Z")]
    public void TryParseRetryAfter_Invalid_False(string value)
    {
        Assert.False(AcmeHttpHeaders.TryParseRetryAfter(value, Now, out _));
    }

    [Fact]
    public void ParseLinks_SeveralHeadersAndLinks_EveryRelationResolved()
    {
        var links = AcmeHttpHeaders.ParseLinks(
            [
                "<https://acme.test/directory>;rel=\"index\"",
                "</cert/1/1>; rel=\"alternate\", <https://acme.test/cert/1/2>;rel=alternate",
                "<https://acme.test/x>; title=\"a, b; c\"; rel=\"up alternate\"",
            ],
            Base);

        Assert.Equal(
            [
                new AcmeLink(new Uri("https://acme.test/directory"), "index"),
                new AcmeLink(new Uri("https://acme.test/cert/1/1"), "alternate"),
                new AcmeLink(new Uri("https://acme.test/cert/1/2"), "alternate"),
                new AcmeLink(new Uri("https://acme.test/x"), "up"),
                new AcmeLink(new Uri("https://acme.test/x"), "alternate"),
            ],
            links);
        Assert.Equal(3, AcmeHttpHeaders.Targets(links, "alternate").Count);
    }

    [Theory]
    [InlineData("garbage")]
    [InlineData("<https://acme.test/a")]
    [InlineData("<https://acme.test/a>; title=x")]
    [InlineData(";;;,,,")]
    public void ParseLinks_Unreadable_SkippedWithoutThrowing(string value)
    {
        Assert.Empty(AcmeHttpHeaders.ParseLinks([value], Base));
    }

    [Fact]
    public void ParseLinks_GoodAfterBad_GoodKept()
    {
        var links = AcmeHttpHeaders.ParseLinks(["junk \"x,y\", <https://acme.test/b>;rel=alternate"], Base);

        Assert.Equal([new AcmeLink(new Uri("https://acme.test/b"), "alternate")], links);
    }
}
