namespace Gatehouse.Dns;

/// <summary>
/// A DNS change or lookup failed. The message names the record, zone and server involved; it never carries a TSIG
/// secret.
/// </summary>
public sealed class DnsException : Exception
{
    public DnsException(string message, DnsResponseCode? responseCode = null, bool transient = false, Exception? innerException = null)
        : base(message, innerException)
    {
        ResponseCode = responseCode;
        Transient = transient;
    }

    /// <summary>The server's answer when it gave one: the header RCODE, or the TSIG error (BADSIG, BADKEY, BADTIME)
    /// when the TSIG record carried one.</summary>
    public DnsResponseCode? ResponseCode { get; }

    /// <summary>True when trying again unchanged may succeed (time-outs, SERVFAIL, a record not visible yet).</summary>
    public bool Transient { get; }
}
