namespace Gatehouse.Sites;

/// <summary>
/// How the edge handles a site's connections. Modes that terminate TLS at the edge (offload, re-encrypt) get a
/// certificate and go through HTTP routing; modes that do not (passthrough) get neither. Stored by name, so new
/// modes can join without renumbering.
/// </summary>
public enum SiteMode
{
    /// <summary>The edge terminates TLS with the site's certificate and proxies HTTP to http(s) backends.</summary>
    Offload,

    /// <summary>The edge reads the ClientHello's SNI without terminating TLS and splices the TCP stream to the
    /// site's TCP backends, which present their own certificates.</summary>
    Passthrough,

    /// <summary>The edge terminates TLS with the site's certificate and proxies over HTTPS to the site's https
    /// backends, verifying their certificates (<see cref="SiteDefinition.BackendTls"/>).</summary>
    Reencrypt,
}

/// <summary>The PROXY protocol header (HAProxy's proxy-protocol.txt) a passthrough site's backends get first.</summary>
public enum ProxyProtocolVersion
{
    /// <summary>No header: the backend sees the edge's address.</summary>
    None,

    /// <summary>Version 1, the human-readable line (<c>PROXY TCP4 ...\r\n</c>).</summary>
    V1,

    /// <summary>Version 2, the binary header.</summary>
    V2,
}

/// <summary>The names sites are written with in configuration, the API and the CLI.</summary>
public static class SiteModes
{
    /// <summary>Parses a mode name (case-insensitive); null or empty is <see cref="SiteMode.Offload"/>.</summary>
    public static bool TryParseMode(string? text, out SiteMode mode)
    {
        mode = SiteMode.Offload;
        switch (text?.Trim().ToUpperInvariant())
        {
            case null or "" or "OFFLOAD":
                return true;
            case "PASSTHROUGH":
                mode = SiteMode.Passthrough;
                return true;
            case "REENCRYPT" or "RE-ENCRYPT":
                mode = SiteMode.Reencrypt;
                return true;
            default:
                return false;
        }
    }

    /// <summary>Parses a PROXY protocol setting (case-insensitive): none, v1, v2; null or empty is none.</summary>
    public static bool TryParseProxyProtocol(string? text, out ProxyProtocolVersion version)
    {
        version = ProxyProtocolVersion.None;
        switch (text?.Trim().ToUpperInvariant())
        {
            case null or "" or "NONE":
                return true;
            case "V1" or "1":
                version = ProxyProtocolVersion.V1;
                return true;
            case "V2" or "2":
                version = ProxyProtocolVersion.V2;
                return true;
            default:
                return false;
        }
    }

    /// <summary>The name a mode is written with (<c>offload</c>, <c>passthrough</c>, <c>reencrypt</c>).</summary>
    public static string Name(this SiteMode mode) => mode switch
    {
        SiteMode.Passthrough => "passthrough",
        SiteMode.Reencrypt => "reencrypt",
        _ => "offload",
    };

    /// <summary>The name a PROXY protocol setting is written with (<c>none</c>, <c>v1</c>, <c>v2</c>).</summary>
    public static string Name(this ProxyProtocolVersion version) => version switch
    {
        ProxyProtocolVersion.V1 => "v1",
        ProxyProtocolVersion.V2 => "v2",
        _ => "none",
    };

    /// <summary>Whether the edge terminates TLS for sites of this mode (and so needs a certificate for them).</summary>
    public static bool TerminatesTls(this SiteMode mode) => mode != SiteMode.Passthrough;
}
