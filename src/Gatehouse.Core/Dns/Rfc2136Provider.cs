using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gatehouse.Dns;

/// <summary>
/// Publishes DNS-01 records with RFC 2136 dynamic updates signed with TSIG (RFC 8945), and waits for them on the
/// primary server (or the servers <see cref="Rfc2136Options.Visibility"/> names).
/// </summary>
/// <remarks>
/// An update adds one TXT record (§2.5.1) or deletes one record from the RRset (§2.5.4, class NONE), without
/// prerequisites, so values for one name (a wildcard and its base name) come and go independently. Every response is
/// checked against the request's MAC: an unsigned or altered "NOERROR" is not taken for success.
/// </remarks>
public sealed class Rfc2136Provider : IDnsChallengeProvider, IDisposable
{
    private const int MaxAttempts = 10;

    private readonly Rfc2136Options _options;
    private readonly DnsServerAddress _server;
    private readonly string? _zone;
    private readonly TsigKey _key;
    private readonly DnsTransport _transport;
    private readonly DnsQueryClient _client;
    private readonly TxtRecordWatcher _watcher;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, string> _zones = new(StringComparer.OrdinalIgnoreCase);

    /// <exception cref="ArgumentException">The options are not usable (server address, zone or key name, TTL,
    /// timeout, attempts).</exception>
    public Rfc2136Provider(Rfc2136Options options, ILogger<Rfc2136Provider>? logger = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.Timeout, TimeSpan.Zero, nameof(options.Timeout));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Attempts, 1, nameof(options.Attempts));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.Attempts, MaxAttempts, nameof(options.Attempts));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.Ttl, (uint)int.MaxValue, nameof(options.Ttl)); // RFC 2181 §8
        _options = options;
        _server = DnsServerAddress.Parse(options.Server);
        _zone = options.Zone is null ? null : DnsName.Normalize(options.Zone, nameof(options.Zone));
        _key = new TsigKey(options.KeyName, options.Algorithm, options.Secret);
        _transport = new DnsTransport(options.Timeout, options.Attempts);
        _client = new DnsQueryClient(_transport);
        _timeProvider = timeProvider ?? TimeProvider.System;
        _logger = logger ?? NullLogger<Rfc2136Provider>.Instance;
        _watcher = new TxtRecordWatcher(options.Visibility ?? new DnsVisibilityOptions { Nameservers = [options.Server], QueryTimeout = options.Timeout },
            _timeProvider, _logger);
    }

    public async Task PresentAsync(string recordName, string value, CancellationToken cancellationToken)
    {
        var (name, zone, server) = await UpdateAsync(recordName, value, add: true, cancellationToken);
        DnsLog.Presented(_logger, name, zone, server.ToString());
    }

    public async Task CleanupAsync(string recordName, string value, CancellationToken cancellationToken)
    {
        var (name, zone, server) = await UpdateAsync(recordName, value, add: false, cancellationToken);
        DnsLog.CleanedUp(_logger, name, zone, server.ToString());
    }

    public Task WaitUntilVisibleAsync(string recordName, string value, TimeSpan timeout, CancellationToken cancellationToken) =>
        _watcher.WaitUntilVisibleAsync(recordName, value, timeout, cancellationToken);

    public void Dispose() => _key.Dispose();

    private async Task<(string Name, string Zone, IPEndPoint Server)> UpdateAsync(string recordName, string value, bool add, CancellationToken cancellationToken)
    {
        var name = DnsName.Normalize(recordName, nameof(recordName));
        ArgumentNullException.ThrowIfNull(value);
        var server = await _server.ResolveAsync(cancellationToken);
        var zone = await ZoneAsync(name, server, cancellationToken);
        var record = add
            ? new DnsRecord(name, DnsRecordType.TXT, DnsClass.IN, _options.Ttl, TxtData.FromValue(value))
            : new DnsRecord(name, DnsRecordType.TXT, DnsClass.NONE, 0, TxtData.FromValue(value));
        var update = new DnsMessage
        {
            Id = DnsQueryClient.NewId(),
            Opcode = DnsOpcode.Update,
            Questions = [new DnsQuestion(zone, DnsRecordType.SOA)],
            Authorities = [record],
        };
        var what = $"the DNS update {(add ? "adding a TXT value at" : "removing a TXT value from")} {name} in zone {zone} (server {server}, TSIG key {_key.Name})";
        var (request, mac) = Tsig.Sign(update.ToArray(), _key, _timeProvider.GetUtcNow());
        DnsResponse response;
        try
        {
            response = await _transport.ExchangeAsync(server, request, cancellationToken);
        }
        catch (DnsException e)
        {
            throw new DnsException($"{what} failed: {e.Message}", e.ResponseCode, e.Transient, e);
        }

        Check(response, mac, what, name, zone);
        return (name, zone, server);
    }

    private async Task<string> ZoneAsync(string name, IPEndPoint server, CancellationToken cancellationToken)
    {
        if (_zone is not null)
        {
            return DnsName.IsAtOrBelow(name, _zone)
                ? _zone
                : throw new DnsException($"{name} is not in the configured zone {_zone}", DnsResponseCode.NotZone);
        }

        if (_zones.TryGetValue(name, out var known))
        {
            return known;
        }

        var zone = await _client.FindZoneAsync(server, name, recursionDesired: false, cancellationToken);
        DnsLog.ZoneFound(_logger, name, zone, server.ToString());
        return _zones[name] = zone;
    }

    private void Check(DnsResponse response, byte[] requestMac, string what, string name, string zone)
    {
        var code = response.Message.ResponseCode;
        var tsig = Tsig.Verify(response.Bytes, response.Message, _key, requestMac, _timeProvider.GetUtcNow());
        switch (tsig.Status)
        {
            case TsigStatus.ServerError:
                throw new DnsException($"{what} was refused: {Explain(tsig.Error, name, zone, tsig.TimeSigned)}", tsig.Error);
            case TsigStatus.Unsigned when code != DnsResponseCode.NoError:
                throw new DnsException($"{what} failed: {Explain(code, name, zone, 0)} (the answer was not signed)", code, code == DnsResponseCode.ServFail);
            case TsigStatus.Unsigned:
                throw new DnsException($"{what} was answered without a TSIG signature; its success cannot be trusted", code);
            case TsigStatus.OtherKey or TsigStatus.BadMac:
                throw new DnsException($"{what} was answered with a TSIG signature that does not verify with our key; the answer is not trusted", code);
            case TsigStatus.BadTime:
                throw new DnsException($"{what} was answered at server time {DateTimeOffset.FromUnixTimeSeconds(tsig.TimeSigned):u}, "
                    + $"too far from this machine's clock ({_timeProvider.GetUtcNow():u}); check both clocks", DnsResponseCode.BadTime);
        }

        if (code != DnsResponseCode.NoError)
        {
            throw new DnsException($"{what} failed: {Explain(code, name, zone, 0)}", code, code == DnsResponseCode.ServFail);
        }
    }

    private string Explain(DnsResponseCode code, string name, string zone, long serverTime) => code switch
    {
        DnsResponseCode.NotAuth => $"NOTAUTH: the server is not authoritative for zone {zone} (or not the primary that takes updates)",
        DnsResponseCode.Refused => $"REFUSED: the server does not let TSIG key {_key.Name} update zone {zone} (see its allow-update or update-policy)",
        DnsResponseCode.NotZone => $"NOTZONE: {name} is outside zone {zone}",
        DnsResponseCode.NotImp => "NOTIMP: the server does not support dynamic updates",
        DnsResponseCode.FormErr => "FORMERR: the server could not read the update",
        DnsResponseCode.ServFail => "SERVFAIL: the server failed to apply the update",
        DnsResponseCode.BadSig => $"BADSIG: the server rejected the signature made with TSIG key {_key.Name}; the secret does not match the server's",
        DnsResponseCode.BadKey => $"BADKEY: the server does not know TSIG key {_key.Name} with algorithm {_key.AlgorithmName[..^1]}",
        DnsResponseCode.BadTime => $"BADTIME: the server's clock ({DateTimeOffset.FromUnixTimeSeconds(serverTime):u}) and this machine's differ by more than {Tsig.DefaultFudge} s",
        _ => code.ToString().ToUpperInvariant(),
    };
}
