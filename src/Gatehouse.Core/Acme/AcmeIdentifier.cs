using System.Net;
using System.Security.Cryptography.X509Certificates;

namespace Gatehouse.Acme;

/// <summary>An identifier a certificate is for (RFC 8555 §9.7.7): a DNS name (wildcards included) or an IP
/// address (RFC 8738).</summary>
/// <param name="Type"><c>dns</c> or <c>ip</c>.</param>
/// <param name="Value">The name (<c>*.example.com</c> for a wildcard) or the address.</param>
public sealed record AcmeIdentifier(string Type, string Value)
{
    public const string DnsType = "dns";
    public const string IpType = "ip";

    public static AcmeIdentifier Dns(string name) => new(DnsType, name);

    /// <summary>An <c>ip</c> identifier for <paramref name="name"/> when it is an address, else a <c>dns</c> one.</summary>
    public static AcmeIdentifier FromName(string name) =>
        IPAddress.TryParse(name, out var address) ? new(IpType, address.ToString()) : new(DnsType, name);

    /// <summary>Whether this is a wildcard DNS name (<c>*.example.com</c>).</summary>
    public bool IsWildcard => Type == DnsType && Value.StartsWith("*.", StringComparison.Ordinal);

    /// <summary>Adds this identifier to a subjectAltName: an iPAddress entry for <c>ip</c>, a dNSName otherwise.</summary>
    internal void AddTo(SubjectAlternativeNameBuilder builder)
    {
        if (Type == IpType)
        {
            builder.AddIpAddress(IPAddress.Parse(Value));
        }
        else
        {
            builder.AddDnsName(Value);
        }
    }

    public override string ToString() => $"{Type}:{Value}";
}
