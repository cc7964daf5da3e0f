using System.Collections.Concurrent;
using Gatehouse.Dns;
using Gatehouse.IntegrationTests.Infrastructure;
using Microsoft.Extensions.Logging;

namespace Gatehouse.IntegrationTests.Dns;

/// <summary>The RFC 2136 provider against a real BIND 9: what it publishes is what dig sees, and BIND's refusals
/// become clear errors.</summary>
public sealed class Rfc2136BindTests(Bind bind) : IClassFixture<Bind>
{
    private static readonly TimeSpan VisibleWithin = TimeSpan.FromSeconds(10);

    private static string NewName() => $"_acme-challenge.{Guid.NewGuid():N}.{Bind.Zone}";

    private static string NewValue() => Convert.ToBase64String(Guid.NewGuid().ToByteArray()).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    [Fact]
    public async Task PresentAsync_ThenDigAndWaitUntilVisible_SeeTheValue()
    {
        var logs = new ConcurrentQueue<string>();
        using var loggerFactory = LoggerFactory.Create(b => b.AddProvider(new ListLoggerProvider(logs)).SetMinimumLevel(LogLevel.Debug));
        using var provider = new Rfc2136Provider(bind.Options(), loggerFactory.CreateLogger<Rfc2136Provider>());
        var (name, value) = (NewName(), NewValue());

        await provider.PresentAsync(name, value, CancellationToken.None);
        await provider.WaitUntilVisibleAsync(name, value, VisibleWithin, CancellationToken.None);

        Assert.Equal([value], await bind.DigTxtAsync(name));
        Assert.Contains(logs, line => line.Contains($"in zone {Bind.Zone}", StringComparison.Ordinal));
        Assert.DoesNotContain(logs, line => line.Contains(Convert.ToBase64String(bind.Secret), StringComparison.Ordinal));
    }

    [Fact]
    public async Task PresentAsync_TwoValuesForOneName_BothServed()
    {
        using var provider = new Rfc2136Provider(bind.Options(zone: Bind.Zone));
        var name = NewName();
        var values = new[] { NewValue(), NewValue() }.Order(StringComparer.Ordinal).ToArray();

        await provider.PresentAsync(name, values[0], CancellationToken.None);
        await provider.PresentAsync(name, values[1], CancellationToken.None);
        await provider.PresentAsync(name, values[1], CancellationToken.None); // again: no duplicate, no error

        Assert.Equal(values, await bind.DigTxtAsync(name));
    }

    [Fact]
    public async Task CleanupAsync_RemovesExactlyThatValue()
    {
        using var provider = new Rfc2136Provider(bind.Options());
        var (name, kept, removed) = (NewName(), NewValue(), NewValue());
        await provider.PresentAsync(name, kept, CancellationToken.None);
        await provider.PresentAsync(name, removed, CancellationToken.None);

        await provider.CleanupAsync(name, removed, CancellationToken.None);
        await provider.CleanupAsync(name, removed, CancellationToken.None); // already gone: not an error

        Assert.Equal([kept], await bind.DigTxtAsync(name));
        await provider.CleanupAsync(name, kept, CancellationToken.None);
        Assert.Empty(await bind.DigTxtAsync(name));
    }

    [Fact]
    public async Task PresentAsync_HmacSha512Key_IsAccepted()
    {
        using var provider = new Rfc2136Provider(bind.Options(keyName: Bind.Sha512KeyName, algorithm: TsigAlgorithm.HmacSha512));
        var (name, value) = (NewName(), NewValue());

        await provider.PresentAsync(name, value, CancellationToken.None);

        Assert.Equal([value], await bind.DigTxtAsync(name));
    }

    [Fact]
    public async Task PresentAsync_WrongSecret_FailsWithBadSigAndNoSecret()
    {
        var wrong = new byte[32];
        wrong[0] = 0x42;
        using var provider = new Rfc2136Provider(bind.Options(secret: wrong));
        var name = NewName();

        var error = await Assert.ThrowsAsync<DnsException>(() => provider.PresentAsync(name, NewValue(), CancellationToken.None));

        Assert.Equal(DnsResponseCode.BadSig, error.ResponseCode);
        Assert.Contains("BADSIG", error.Message);
        Assert.Contains("secret does not match", error.Message);
        Assert.Contains(name, error.Message);
        Assert.Contains(bind.Server, error.Message);
        Assert.DoesNotContain(Convert.ToBase64String(wrong), error.ToString());
        Assert.DoesNotContain(Convert.ToBase64String(bind.Secret), error.ToString());
        Assert.False(error.Transient);
        Assert.Empty(await bind.DigTxtAsync(name));
    }

    [Fact]
    public async Task PresentAsync_UnknownKeyName_FailsWithBadKey()
    {
        using var provider = new Rfc2136Provider(bind.Options(keyName: "nobody"));

        var error = await Assert.ThrowsAsync<DnsException>(() => provider.PresentAsync(NewName(), NewValue(), CancellationToken.None));

        Assert.Equal(DnsResponseCode.BadKey, error.ResponseCode);
        Assert.Contains("BADKEY", error.Message);
        Assert.Contains("does not know TSIG key nobody.", error.Message);
    }

    [Fact]
    public async Task PresentAsync_KeyOfTheWrongAlgorithm_FailsWithBadKey()
    {
        using var provider = new Rfc2136Provider(bind.Options(algorithm: TsigAlgorithm.HmacSha512, secret: bind.Secret));

        var error = await Assert.ThrowsAsync<DnsException>(() => provider.PresentAsync(NewName(), NewValue(), CancellationToken.None));

        Assert.Equal(DnsResponseCode.BadKey, error.ResponseCode);
    }

    [Fact]
    public async Task PresentAsync_ConfiguredZoneNotServed_FailsWithNotAuthNamingTheZone()
    {
        using var provider = new Rfc2136Provider(bind.Options(zone: "elsewhere.test."));

        var error = await Assert.ThrowsAsync<DnsException>(() => provider.PresentAsync("_acme-challenge.www.elsewhere.test.", NewValue(), CancellationToken.None));

        Assert.Equal(DnsResponseCode.NotAuth, error.ResponseCode);
        Assert.Contains("NOTAUTH", error.Message);
        Assert.Contains("zone elsewhere.test.", error.Message);
    }

    [Fact]
    public async Task PresentAsync_ZoneFoundButNotUpdatable_FailsWithRefused()
    {
        using var provider = new Rfc2136Provider(bind.Options());

        var error = await Assert.ThrowsAsync<DnsException>(() => provider.PresentAsync($"_acme-challenge.www.{Bind.ReadOnlyZone}", NewValue(), CancellationToken.None));

        Assert.Equal(DnsResponseCode.Refused, error.ResponseCode);
        Assert.Contains($"zone {Bind.ReadOnlyZone}", error.Message);
    }

    [Fact]
    public async Task PresentAsync_NoZoneServedContainsTheName_FailsNamingIt()
    {
        using var provider = new Rfc2136Provider(bind.Options());

        var error = await Assert.ThrowsAsync<DnsException>(() => provider.PresentAsync("_acme-challenge.www.nowhere.test.", NewValue(), CancellationToken.None));

        Assert.Contains("no zone containing _acme-challenge.www.nowhere.test. is served", error.Message);
        Assert.Equal(DnsResponseCode.Refused, error.ResponseCode);
    }

    [Fact]
    public async Task WaitUntilVisibleAsync_NeverPresented_TimesOutClearly()
    {
        using var provider = new Rfc2136Provider(bind.Options());
        var name = NewName();

        var error = await Assert.ThrowsAsync<DnsException>(() => provider.WaitUntilVisibleAsync(name, NewValue(), TimeSpan.FromSeconds(1.5), CancellationToken.None));

        Assert.Contains($"the TXT value at {name} was not visible within 1.5 s", error.Message);
        // The wildcard A record makes the name exist: no TXT there, rather than NXDOMAIN.
        Assert.Contains($"{bind.Server} answered no TXT record", error.Message);
    }

    [Fact]
    public async Task WaitUntilVisibleAsync_NameserversFoundThroughNsRecords_SeesTheValue()
    {
        using var provider = new Rfc2136Provider(bind.Options() with
        {
            // BIND is its own "resolver" here: it answers for its zone, NS ns.acme.test., A 127.0.0.1.
            Visibility = new DnsVisibilityOptions { Resolver = bind.Server, AuthoritativePort = bind.Port },
        });
        var (name, value) = (NewName(), NewValue());

        await provider.PresentAsync(name, value, CancellationToken.None);
        await provider.WaitUntilVisibleAsync(name, value, VisibleWithin, CancellationToken.None);
    }

    [Fact]
    public async Task WaitUntilVisibleAsync_AnswerTooLargeForUdp_IsReadOverTcp()
    {
        using var provider = new Rfc2136Provider(bind.Options());
        var name = NewName();
        var values = Enumerable.Range(0, 14).Select(_ => NewValue() + NewValue()).ToArray(); // ~14 × 60 octets > 512

        foreach (var value in values)
        {
            await provider.PresentAsync(name, value, CancellationToken.None);
        }

        await provider.WaitUntilVisibleAsync(name, values[^1], VisibleWithin, CancellationToken.None);
        Assert.Equal(values.Order(StringComparer.Ordinal), await bind.DigTxtAsync(name));
    }

    [Fact]
    public async Task PresentAsync_ConcurrentValuesForManyNames_AllArrive()
    {
        using var provider = new Rfc2136Provider(bind.Options());
        var records = Enumerable.Range(0, 20).Select(_ => (Name: NewName(), Value: NewValue())).ToArray();

        await Task.WhenAll(records.Select(r => provider.PresentAsync(r.Name, r.Value, CancellationToken.None)));
        await Task.WhenAll(records.Select(r => provider.WaitUntilVisibleAsync(r.Name, r.Value, VisibleWithin, CancellationToken.None)));
    }
}
