using Gatehouse.Certificates;

namespace Gatehouse.Tests.Certificates;

public sealed class RenewalPolicyTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 22, 12, 0, 0, TimeSpan.Zero);
    private static readonly CertificateDemand Demand = new("a.example", ["a.example", "b.example"], ["local"]);

    private static CertificateRecord Valid(DateTimeOffset notBefore, DateTimeOffset notAfter) => new()
    {
        Id = "a.example",
        Names = ["b.example", "a.example"],
        Issuer = "local",
        ChainPem = "pem",
        SealedKey = [1],
        NotBefore = notBefore,
        NotAfter = notAfter,
        RenewAfter = RenewalPolicy.RenewAfter(notBefore, notAfter),
        Status = CertificateStatus.Valid,
    };

    [Fact]
    public void Decide_NoRecord_IssuesNow()
    {
        var decision = RenewalPolicy.Decide(Demand, null, Now);
        Assert.Equal(RenewalAction.Issue, decision.Action);
    }

    [Fact]
    public void Decide_FreshCertificate_WaitsUntilOneThirdOfItsLifetimeIsLeft()
    {
        var record = Valid(Now.AddDays(-1), Now.AddDays(5));
        var decision = RenewalPolicy.Decide(Demand, record, Now);
        Assert.Equal(RenewalAction.Wait, decision.Action);
        Assert.Equal(Now.AddDays(3), decision.DueAt);
        Assert.Equal(RenewalAction.Issue, RenewalPolicy.Decide(Demand, record, Now.AddDays(3)).Action);
    }

    [Fact]
    public void Decide_HourLongCertificate_RenewsWithTwentyMinutesLeft()
    {
        var record = Valid(Now, Now.AddHours(1));
        Assert.Equal(Now.AddMinutes(40), RenewalPolicy.Decide(Demand, record, Now).DueAt);
    }

    [Fact]
    public void Decide_NamesChanged_IssuesNowEvenWhileBackingOff()
    {
        var record = Valid(Now.AddDays(-1), Now.AddDays(5)) with { ConsecutiveFailures = 3, RetryAfter = Now.AddHours(1) };
        var demand = Demand with { Names = ["a.example", "c.example"] };
        var decision = RenewalPolicy.Decide(demand, record, Now);
        Assert.Equal(RenewalAction.Issue, decision.Action);
        Assert.Equal("the names changed", decision.Reason);
    }

    [Fact]
    public void Decide_DueButFailing_WaitsForTheRetryTime()
    {
        var record = Valid(Now.AddDays(-6), Now.AddDays(1)) with { ConsecutiveFailures = 2, RetryAfter = Now.AddMinutes(4) };
        var decision = RenewalPolicy.Decide(Demand, record, Now);
        Assert.Equal(RenewalAction.Wait, decision.Action);
        Assert.Equal(Now.AddMinutes(4), decision.DueAt);
    }

    [Fact]
    public void Decide_IssuerNoLongerListed_Reissues()
    {
        var record = Valid(Now.AddDays(-1), Now.AddDays(5)) with { Issuer = "acme-old" };
        Assert.Equal(RenewalAction.Issue, RenewalPolicy.Decide(Demand, record, Now).Action);
    }

    [Theory]
    [InlineData(1, 0.5, 60)]
    [InlineData(2, 0.5, 120)]
    [InlineData(5, 0.5, 960)]
    [InlineData(30, 0.5, 6 * 3600)]
    [InlineData(1, 0.0, 48)]
    [InlineData(1, 1.0, 72)]
    public void NextRetry_BacksOffExponentiallyWithJitterAndACap(int failures, double jitter, double expectedSeconds)
    {
        Assert.Equal(expectedSeconds, (RenewalPolicy.NextRetry(failures, Now, null, jitter) - Now).TotalSeconds, 3);
    }

    [Fact]
    public void NextRetry_IssuerAskedForLater_WaitsForTheIssuer()
    {
        Assert.Equal(Now.AddHours(2), RenewalPolicy.NextRetry(1, Now, Now.AddHours(2), 0.5));
    }
}
