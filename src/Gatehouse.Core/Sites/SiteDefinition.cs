namespace Gatehouse.Sites;

/// <summary>Desired state of one site: the names it serves and where its requests go.</summary>
public sealed record SiteDefinition
{
    /// <summary>The site's id: its first host name, normalized. Also the id of its certificate.</summary>
    public required string Id { get; init; }

    /// <summary>The host names (exact or one-level wildcard), normalized, in the order given.</summary>
    public required IReadOnlyList<string> Hosts { get; init; }

    /// <summary>Where the site's traffic goes, round robin: base URLs (http or https) for an offload site;
    /// <c>tcp://host:port</c> for a passthrough site.</summary>
    public required IReadOnlyList<string> Backends { get; init; }

    /// <summary>How the edge handles the site's connections; records stored before modes existed are offload.</summary>
    public SiteMode Mode { get; init; } = SiteMode.Offload;

    /// <summary>The PROXY protocol header a passthrough site's backends get before the client's bytes.</summary>
    public ProxyProtocolVersion ProxyProtocol { get; init; } = ProxyProtocolVersion.None;

    /// <summary>Issuers to try in order; empty means the built-in local CA.</summary>
    public IReadOnlyList<string> Issuers { get; init; } = [];

    /// <summary>The certificate key type: <c>ec256</c> (default), <c>ec384</c>, <c>rsa2048</c>, <c>rsa3072</c>, <c>rsa4096</c>.</summary>
    public string? KeyType { get; init; }

    /// <summary>The ACME certificate profile to ask for (e.g. <c>shortlived</c>), when the CA offers profiles.</summary>
    public string? Profile { get; init; }

    /// <summary>Mutual TLS toward the site's clients; null: no client certificate is asked for.</summary>
    public ClientAuthPolicy? ClientAuth { get; init; }

    /// <summary>The site's HSTS; null: the default for its issuers (<see cref="HstsPolicy.For"/>).</summary>
    public HstsPolicy? Hsts { get; init; }

    /// <summary>The certificate key types a site may ask for.</summary>
    public static readonly IReadOnlyList<string> KeyTypes = ["ec256", "ec384", "rsa2048", "rsa3072", "rsa4096"];

    /// <summary>Where the site was defined: the config file's sites are replaced when the file changes, the admin
    /// API's are kept until removed through the API.</summary>
    public SiteSource Source { get; init; } = SiteSource.Api;

    /// <summary>How a re-encrypt site's backends are verified (CA bundle, names, client certificate); null for the
    /// system trust and the URLs' hosts, and for every other mode.</summary>
    public BackendTls? BackendTls { get; init; }

    /// <summary>Active health checks and passive failure detection of an HTTP site's backends; null for the defaults
    /// (passive detection only).</summary>
    public BackendHealthCheck? HealthCheck { get; init; }

    /// <summary>Value equality over the lists' contents (records compare lists by reference). A new field belongs
    /// here too, or a change of only that field is never written.</summary>
    public bool SameAs(SiteDefinition other) =>
        Id == other.Id && Source == other.Source && Mode == other.Mode && ProxyProtocol == other.ProxyProtocol
        && Hosts.SequenceEqual(other.Hosts) && Backends.SequenceEqual(other.Backends) && Issuers.SequenceEqual(other.Issuers)
        && KeyType == other.KeyType && Profile == other.Profile
        && ClientAuthPolicy.Same(ClientAuth, other.ClientAuth) && Hsts == other.Hsts
        && BackendTls.Same(BackendTls, other.BackendTls) && HealthCheck == other.HealthCheck;
}

/// <summary>Where a site's definition comes from.</summary>
public enum SiteSource
{
    /// <summary>The admin API or CLI.</summary>
    Api,

    /// <summary>The configuration file.</summary>
    Config,
}
