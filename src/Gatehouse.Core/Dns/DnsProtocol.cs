namespace Gatehouse.Dns;

/// <summary>Resource record types used here (RFC 1035 §3.2.2, RFC 3596, RFC 8945 §4.2).</summary>
internal enum DnsRecordType : ushort
{
    A = 1,
    NS = 2,
    CNAME = 5,
    SOA = 6,
    TXT = 16,
    AAAA = 28,
    OPT = 41,
    TSIG = 250,
    ANY = 255,
}

/// <summary>Record classes (RFC 1035 §3.2.4; NONE and ANY as RFC 2136 §2.4 and §2.5 use them).</summary>
internal enum DnsClass : ushort
{
    IN = 1,
    NONE = 254,
    ANY = 255,
}

/// <summary>Header opcodes (RFC 1035 §4.1.1, RFC 2136 §1).</summary>
internal enum DnsOpcode : byte
{
    Query = 0,
    Update = 5,
}

/// <summary>
/// Response codes: the header's 4-bit RCODE (RFC 1035 §4.1.1, RFC 2136 §2.2) and the 16-bit TSIG error values
/// (RFC 8945 §4.3).
/// </summary>
public enum DnsResponseCode : ushort
{
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NXDomain = 3,
    NotImp = 4,
    Refused = 5,
    YXDomain = 6,
    YXRRSet = 7,
    NXRRSet = 8,
    NotAuth = 9,
    NotZone = 10,
    BadSig = 16,
    BadKey = 17,
    BadTime = 18,
    BadTrunc = 22,
}
