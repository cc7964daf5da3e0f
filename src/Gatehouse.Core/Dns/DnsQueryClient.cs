using System.Net;
using System.Security.Cryptography;

namespace Gatehouse.Dns;

/// <summary>Plain queries (RFC 1035 §4.1) and the zone lookup that both providers need.</summary>
internal sealed class DnsQueryClient(DnsTransport transport)
{
    /// <summary>A random message ID (RFC 5452 §9.2: IDs are part of what a spoofer must guess).</summary>
    public static ushort NewId() => (ushort)RandomNumberGenerator.GetInt32(ushort.MaxValue + 1);

    /// <summary>Asks <paramref name="server"/> one question. <paramref name="recursionDesired"/> is false for an
    /// authoritative server, so it answers from its own zone data only.</summary>
    public Task<DnsResponse> QueryAsync(IPEndPoint server, string name, DnsRecordType type, bool recursionDesired, CancellationToken cancellationToken)
    {
        var request = new DnsMessage
        {
            Id = NewId(),
            Opcode = DnsOpcode.Query,
            RecursionDesired = recursionDesired,
            Questions = [new DnsQuestion(name, type)],
        };
        return transport.ExchangeAsync(server, request.ToArray(), cancellationToken);
    }

    /// <summary>
    /// The zone that holds <paramref name="name"/>: an SOA query for the name, then for each parent in turn, until an
    /// answer carries the SOA of the zone (in the answer for the apex, in the authority section below it, RFC 2308 §2).
    /// </summary>
    /// <exception cref="DnsException">No zone served by <paramref name="server"/> contains the name.</exception>
    public async Task<string> FindZoneAsync(IPEndPoint server, string name, bool recursionDesired, CancellationToken cancellationToken)
    {
        for (var candidate = name; ; candidate = DnsName.Parent(candidate))
        {
            var response = (await QueryAsync(server, candidate, DnsRecordType.SOA, recursionDesired, cancellationToken)).Message;
            if (response.ResponseCode is DnsResponseCode.NoError or DnsResponseCode.NXDomain)
            {
                foreach (var record in response.Answers.Concat(response.Authorities))
                {
                    if (record.Type == DnsRecordType.SOA && DnsName.IsAtOrBelow(candidate, record.Name))
                    {
                        return record.Name;
                    }
                }
            }

            if (candidate == DnsName.Root)
            {
                throw new DnsException($"no zone containing {name} is served by DNS server {server}: SOA queries for it and its parents were answered {response.ResponseCode.ToString().ToUpperInvariant()}",
                    response.ResponseCode);
            }
        }
    }
}
