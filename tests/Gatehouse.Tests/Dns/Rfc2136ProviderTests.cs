using Gatehouse.Dns;
using Microsoft.Extensions.Time.Testing;

namespace Gatehouse.Tests.Dns;

/// <summary>The provider against a scripted server, for what a real server does not do on demand (unsigned or
/// forged answers, clock skew). The real exchanges with BIND are in the integration tests.</summary>
public sealed class Rfc2136ProviderTests
{
    private const string Name = "_acme-challenge.www.acme.test.";
    private static readonly byte[] Secret = Enumerable.Range(100, 32).Select(i => (byte)i).ToArray();

    /// <summary>The provider's options against <paramref name="server"/>. One attempt, and a timeout long enough that a
    /// loaded machine's late thread-pool work does not turn an answer into silence (0.5 s did, under the full suite).</summary>
    private static Rfc2136Options Options(FakeDnsServer server, string? zone = "acme.test.", int timeoutMilliseconds = 3000) => new()
    {
        Server = server.Address,
        Zone = zone,
        KeyName = "gatehouse",
        Secret = Secret,
        Ttl = 120,
        Timeout = TimeSpan.FromMilliseconds(timeoutMilliseconds),
        Attempts = 1,
    };

    /// <summary>An answer signed over the request's MAC, as a server holding <paramref name="secret"/> would sign it.</summary>
    private static byte[] Signed(FakeDnsRequest request, byte[] secret, DnsResponseCode code = DnsResponseCode.NoError, DateTimeOffset? at = null)
    {
        using var key = new TsigKey("gatehouse", TsigAlgorithm.HmacSha256, secret);
        var requestMac = ((TsigData)request.Message.Tsig!.Data).Mac;
        var unsigned = FakeDnsServer.Answer(request, m => new DnsMessage { Id = m.Id, IsResponse = true, Opcode = m.Opcode, ResponseCode = code, Questions = m.Questions });
        return Tsig.Sign(unsigned, key, at ?? DateTimeOffset.UtcNow, requestMac: requestMac).Message;
    }

    private static byte[] SoaAnswer(FakeDnsRequest request) => FakeDnsServer.Answer(request, m => new DnsMessage
    {
        Id = m.Id,
        IsResponse = true,
        Authoritative = true,
        ResponseCode = DnsDomainOf(m.Questions[0].Name) ? DnsResponseCode.NXDomain : DnsResponseCode.Refused,
        Questions = m.Questions,
        Authorities = DnsDomainOf(m.Questions[0].Name)
            ? [new DnsRecord("acme.test.", DnsRecordType.SOA, DnsClass.IN, 60, new SoaData("ns.acme.test.", "hostmaster.acme.test.", 1, 1, 1, 1, 60))]
            : [],
    });

    private static bool DnsDomainOf(string name) => DnsName.IsAtOrBelow(name, "acme.test.");

    [Fact]
    public async Task PresentAsync_SendsOneSignedAddInTheZone()
    {
        await using var server = new FakeDnsServer(r => [Signed(r, Secret)]);
        using var provider = new Rfc2136Provider(Options(server));

        await provider.PresentAsync(Name, "value-1", CancellationToken.None);

        var update = Assert.Single(server.Requests).Message;
        Assert.Equal(DnsOpcode.Update, update.Opcode);
        Assert.Equal(new DnsQuestion("acme.test.", DnsRecordType.SOA), Assert.Single(update.Questions)); // RFC 2136 §2.3
        Assert.Empty(update.Answers); // no prerequisites
        var add = Assert.Single(update.Authorities);
        Assert.Equal((Name, DnsRecordType.TXT, DnsClass.IN, 120u, "value-1"), (add.Name, add.Type, add.Class, add.Ttl, ((TxtData)add.Data).Value));
        Assert.Equal(("gatehouse.", "hmac-sha256."), (update.Tsig!.Name, ((TsigData)update.Tsig.Data).Algorithm));
    }

    [Fact]
    public async Task CleanupAsync_DeletesOnlyThatRecord()
    {
        await using var server = new FakeDnsServer(r => [Signed(r, Secret)]);
        using var provider = new Rfc2136Provider(Options(server));

        await provider.CleanupAsync(Name, "value-1", CancellationToken.None);

        var delete = Assert.Single(Assert.Single(server.Requests).Message.Authorities);
        // RFC 2136 §2.5.4: class NONE, TTL 0, the RDATA of the one record to delete.
        Assert.Equal((Name, DnsRecordType.TXT, DnsClass.NONE, 0u, "value-1"), (delete.Name, delete.Type, delete.Class, delete.Ttl, ((TxtData)delete.Data).Value));
    }

    [Fact]
    public async Task PresentAsync_NoZoneConfigured_FindsItWithSoaQueries()
    {
        await using var server = new FakeDnsServer(r => r.Message.Opcode == DnsOpcode.Update ? [Signed(r, Secret)] : [SoaAnswer(r)]);
        using var provider = new Rfc2136Provider(Options(server, zone: null));

        await provider.PresentAsync(Name, "value-1", CancellationToken.None);
        await provider.PresentAsync(Name, "value-2", CancellationToken.None);

        var requests = server.Requests.ToArray();
        Assert.Equal(3, requests.Length); // the zone is looked up once
        Assert.Equal(new DnsQuestion(Name, DnsRecordType.SOA), requests[0].Message.Questions[0]);
        Assert.False(requests[0].Message.RecursionDesired);
        Assert.Equal("acme.test.", requests[1].Message.Questions[0].Name);
    }

    [Fact]
    public async Task PresentAsync_NameOutsideTheConfiguredZone_Throws()
    {
        await using var server = new FakeDnsServer(r => [Signed(r, Secret)]);
        using var provider = new Rfc2136Provider(Options(server));

        var error = await Assert.ThrowsAsync<DnsException>(() => provider.PresentAsync("_acme-challenge.other.test.", "v", CancellationToken.None));

        Assert.Equal(DnsResponseCode.NotZone, error.ResponseCode);
        Assert.Empty(server.Requests);
    }

    [Fact]
    public async Task PresentAsync_UnsignedSuccess_IsNotTrusted()
    {
        await using var server = new FakeDnsServer(r => [FakeDnsServer.Answer(r)]);
        using var provider = new Rfc2136Provider(Options(server));

        var error = await Assert.ThrowsAsync<DnsException>(() => provider.PresentAsync(Name, "v", CancellationToken.None));

        Assert.Contains("without a TSIG signature", error.Message);
    }

    [Fact]
    public async Task PresentAsync_AnswerSignedWithAnotherSecret_IsNotTrusted()
    {
        await using var server = new FakeDnsServer(r => [Signed(r, new byte[32])]);
        using var provider = new Rfc2136Provider(Options(server));

        var error = await Assert.ThrowsAsync<DnsException>(() => provider.PresentAsync(Name, "v", CancellationToken.None));

        Assert.Contains("does not verify", error.Message);
    }

    [Fact]
    public async Task PresentAsync_SignedRefusal_NamesTheZoneAndKey()
    {
        await using var server = new FakeDnsServer(r => [Signed(r, Secret, DnsResponseCode.Refused)]);
        using var provider = new Rfc2136Provider(Options(server));

        var error = await Assert.ThrowsAsync<DnsException>(() => provider.PresentAsync(Name, "v", CancellationToken.None));

        Assert.Equal(DnsResponseCode.Refused, error.ResponseCode);
        Assert.Contains("REFUSED", error.Message);
        Assert.Contains("zone acme.test.", error.Message);
        Assert.Contains("gatehouse.", error.Message);
        Assert.Contains(server.Address, error.Message);
        Assert.DoesNotContain(Convert.ToBase64String(Secret), error.Message);
    }

    [Fact]
    public async Task PresentAsync_ClockSkewBeyondTheFudge_IsReported()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow.AddHours(1));
        await using var server = new FakeDnsServer(r => [Signed(r, Secret, at: DateTimeOffset.UtcNow)]);
        using var provider = new Rfc2136Provider(Options(server), timeProvider: clock);

        var error = await Assert.ThrowsAsync<DnsException>(() => provider.PresentAsync(Name, "v", CancellationToken.None));

        Assert.Equal(DnsResponseCode.BadTime, error.ResponseCode);
        Assert.Contains("check both clocks", error.Message);
    }

    [Fact]
    public async Task PresentAsync_ServerSilent_FailsTransientlyNamingTheUpdate()
    {
        await using var server = new FakeDnsServer(_ => []);
        using var provider = new Rfc2136Provider(Options(server, timeoutMilliseconds: 500));

        var error = await Assert.ThrowsAsync<DnsException>(() => provider.PresentAsync(Name, "v", CancellationToken.None));

        Assert.True(error.Transient);
        Assert.Contains($"adding a TXT value at {Name} in zone acme.test.", error.Message);
        Assert.Contains("no answer within", error.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(11)]
    public void Constructor_AttemptsOutOfRange_Throws(int attempts) =>
        Assert.ThrowsAny<ArgumentException>(() => new Rfc2136Provider(new Rfc2136Options { Server = "127.0.0.1", KeyName = "k", Secret = [1], Attempts = attempts }));
}
