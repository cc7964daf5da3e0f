using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;

namespace Gatehouse.Dns;

/// <summary>
/// Waits until nameservers answer a TXT query with a given value: the step between publishing a DNS-01 record and
/// asking the CA to validate it. Every server is asked directly and without recursion, so no resolver cache can
/// hide a record or show a stale one.
/// </summary>
internal sealed class TxtRecordWatcher
{
    private static readonly TimeSpan FirstDelay = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(1);
    private const string ResolvConf = "/etc/resolv.conf";

    private readonly DnsVisibilityOptions _options;
    private readonly DnsQueryClient _client;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;

    public TxtRecordWatcher(DnsVisibilityOptions options, TimeProvider timeProvider, ILogger logger)
    {
        _options = options;
        // One try per poll: the poll loop is the retry.
        _client = new DnsQueryClient(new DnsTransport(options.QueryTimeout, attempts: 1));
        _timeProvider = timeProvider;
        _logger = logger;
    }

    public async Task WaitUntilVisibleAsync(string recordName, string value, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var name = DnsName.Normalize(recordName, nameof(recordName));
        ArgumentNullException.ThrowIfNull(value);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);
        var started = _timeProvider.GetTimestamp();
        using var expiry = new CancellationTokenSource(timeout, _timeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, expiry.Token);
        var phase = "finding the zone's nameservers";
        var pending = new List<IPEndPoint>();
        var lastAnswers = new Dictionary<IPEndPoint, string>();
        try
        {
            var servers = await FindServersAsync(name, linked.Token);
            pending.AddRange(servers);
            phase = "waiting for the record";
            var delay = FirstDelay;
            while (true)
            {
                foreach (var server in pending.ToArray())
                {
                    string answer;
                    try
                    {
                        var response = await _client.QueryAsync(server, name, DnsRecordType.TXT, recursionDesired: false, linked.Token);
                        if (Shows(response.Message, name, value))
                        {
                            pending.Remove(server);
                            continue;
                        }

                        answer = Describe(response.Message, name);
                    }
                    catch (DnsException e)
                    {
                        answer = e.Message;
                    }

                    lastAnswers[server] = answer;
                    DnsLog.NotVisibleYet(_logger, name, server.ToString(), answer);
                }

                if (pending.Count == 0)
                {
                    DnsLog.Visible(_logger, name, string.Join(", ", servers), _timeProvider.GetElapsedTime(started));
                    return;
                }

                await Task.Delay(delay, _timeProvider, linked.Token);
                delay = delay * 2 < MaxDelay ? delay * 2 : MaxDelay;
            }
        }
        catch (OperationCanceledException) when (expiry.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            var seconds = timeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture);
            if (pending.Count == 0)
            {
                throw new DnsException($"the TXT value at {name} could not be checked within {seconds} s: timed out {phase}", transient: true);
            }

            var details = string.Join("; ", pending.Select(s => $"{s} answered {lastAnswers.GetValueOrDefault(s, "nothing yet")}"));
            throw new DnsException($"the TXT value at {name} was not visible within {seconds} s: {details}", transient: true);
        }
    }

    private async Task<IReadOnlyList<IPEndPoint>> FindServersAsync(string name, CancellationToken cancellationToken)
    {
        var servers = new List<IPEndPoint>();
        if (_options.Nameservers.Count > 0)
        {
            foreach (var server in _options.Nameservers)
            {
                servers.Add(await DnsServerAddress.Parse(server).ResolveAsync(cancellationToken));
            }

            return servers;
        }

        var resolver = await DnsServerAddress.Parse(_options.Resolver ?? SystemResolver()).ResolveAsync(cancellationToken);
        var zone = await _client.FindZoneAsync(resolver, name, recursionDesired: true, cancellationToken);
        DnsLog.ZoneFound(_logger, name, zone, resolver.ToString());
        var delegation = (await _client.QueryAsync(resolver, zone, DnsRecordType.NS, recursionDesired: true, cancellationToken)).Message;
        foreach (var ns in delegation.Answers)
        {
            if (ns.Data is not NameData { Target: var host } || ns.Type != DnsRecordType.NS)
            {
                continue;
            }

            var addresses = delegation.Additionals.Where(r => r.Type == DnsRecordType.A && DnsName.Equal(r.Name, host)).ToList();
            if (addresses.Count == 0)
            {
                var lookup = (await _client.QueryAsync(resolver, host, DnsRecordType.A, recursionDesired: true, cancellationToken)).Message;
                addresses = lookup.Answers.Where(r => r.Type == DnsRecordType.A && DnsName.Equal(r.Name, host)).ToList();
            }

            foreach (var address in addresses)
            {
                var endpoint = new IPEndPoint(((AddressData)address.Data).Address, _options.AuthoritativePort);
                if (!servers.Contains(endpoint))
                {
                    servers.Add(endpoint);
                }
            }
        }

        return servers.Count > 0
            ? servers
            : throw new DnsException($"zone {zone} has no nameserver with an IPv4 address (asked resolver {resolver})", delegation.ResponseCode);
    }

    private static string SystemResolver()
    {
        try
        {
            foreach (var line in File.ReadLines(ResolvConf))
            {
                var fields = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
                if (fields is ["nameserver", var server, ..])
                {
                    return server;
                }
            }
        }
        catch (IOException)
        {
        }

        throw new DnsException($"no resolver is configured to find the zone's nameservers ({ResolvConf} names none); set the nameservers or the resolver");
    }

    private static bool Shows(DnsMessage response, string name, string value) =>
        response.ResponseCode == DnsResponseCode.NoError
        && response.Answers.Any(r => r.Type == DnsRecordType.TXT && DnsName.Equal(r.Name, name) && r.Data is TxtData txt && string.Equals(txt.Value, value, StringComparison.Ordinal));

    private static string Describe(DnsMessage response, string name)
    {
        if (response.ResponseCode != DnsResponseCode.NoError)
        {
            return response.ResponseCode.ToString().ToUpperInvariant();
        }

        var values = response.Answers.Count(r => r.Type == DnsRecordType.TXT && DnsName.Equal(r.Name, name));
        var text = values == 0 ? "no TXT record" : $"{values} other TXT value(s)";
        return response.Authoritative ? text : text + " (not authoritative for the zone)";
    }
}
