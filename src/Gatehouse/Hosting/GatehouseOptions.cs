using System.Net;
using Gatehouse.Certificates;
using Gatehouse.Sites;

namespace Gatehouse.Hosting;

/// <summary>The validated configuration of one Gatehouse instance.</summary>
public sealed record GatehouseOptions
{
    /// <summary>Where the store, the master key, the admin token and the local CA root live.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>The config file, when one was given (watched for live changes).</summary>
    public string? ConfigPath { get; init; }

    public EdgeOptions Edge { get; init; } = new();

    public AdminOptions Admin { get; init; } = new();

    public LocalCaOptions LocalCa { get; init; } = new();

    /// <summary>How many issuances run at once on this instance (config <c>certificates:maxConcurrentIssuances</c>).</summary>
    public int MaxConcurrentIssuances { get; init; } = 10;

    /// <summary>The least severe level Gatehouse's own events are logged at (config <c>logging:level</c>).</summary>
    public LogLevel LogLevel { get; init; } = LogLevel.Information;

    /// <summary>The lease TTL of certificate locks and of the elected instance's leadership (config
    /// <c>certificates:lockTtl</c>): how long work stays with an instance that died or lost the store.</summary>
    public TimeSpan LockTtl { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>ACME issuers by name (the local CA, <c>local</c>, is always there).</summary>
    public IReadOnlyList<AcmeIssuerOptions> AcmeIssuers { get; init; } = [];

    /// <summary>Every issuer name a site may list.</summary>
    public IReadOnlySet<string> IssuerNames => new HashSet<string>(AcmeIssuers.Select(i => i.Name).Append(LocalCertificateAuthority.IssuerName), StringComparer.Ordinal);

    /// <summary>Master key providers and rotation; by default one software key file in the data directory.</summary>
    public KeysOptions? Keys { get; init; }

    /// <summary><see cref="Keys"/>, or the default: provider <c>local</c>, a key file at <see cref="MasterKeyPath"/>.</summary>
    public KeysOptions EffectiveKeys => Keys ?? new KeysOptions
    {
        Provider = KeysOptions.DefaultProviderName,
        Providers = [new KeyProviderOptions { Name = KeysOptions.DefaultProviderName, Type = KeyProviderType.Software, File = MasterKeyPath }],
    };

    /// <summary>Where sites, certificates and keys are kept (config section <c>store</c>): by default SQLite at
    /// <see cref="StorePath"/>.</summary>
    public StoreOptions Store { get; init; } = new();

    /// <summary>The built-in sample backend's port on 127.0.0.1, or null when it is off.</summary>
    public int? WelcomePort { get; init; }

    /// <summary>The config file's sites, with the configuration path of each.</summary>
    public IReadOnlyList<(SiteDefinition Site, string Path)> Sites { get; init; } = [];

    public string StorePath => Path.Combine(DataDirectory, "gatehouse.db");

    public string MasterKeyPath => Path.Combine(DataDirectory, "master.key");

    public string AdminTokenPath => Path.Combine(DataDirectory, "admin.token");

    public string LocalCaRootPath => Path.Combine(DataDirectory, "local-ca-root.pem");
}

/// <summary>Kinds of store.</summary>
public enum StoreType
{
    /// <summary>The embedded SQLite file in the data directory: one instance.</summary>
    Sqlite,

    /// <summary>An etcd v3 cluster: any number of instances share it.</summary>
    Etcd,
}

/// <summary>The store (config section <c>store</c>).</summary>
public sealed record StoreOptions
{
    public StoreType Type { get; init; } = StoreType.Sqlite;

    /// <summary>The cluster, when <see cref="Type"/> is etcd.</summary>
    public EtcdOptions? Etcd { get; init; }
}

/// <summary>An etcd cluster (config section <c>store:etcd</c>). The password is named by where it is, never given.</summary>
public sealed record EtcdOptions
{
    /// <summary>The members' client URLs.</summary>
    public required IReadOnlyList<Uri> Endpoints { get; init; }

    /// <summary>Prepended to every key, so several Gatehouse systems can share one cluster.</summary>
    public string Prefix { get; init; } = "";

    /// <summary>PEM CA certificates for the members' TLS; null: the system's trust.</summary>
    public string? CaFile { get; init; }

    /// <summary>PEM client certificate and key for mutual TLS.</summary>
    public string? CertFile { get; init; }

    public string? KeyFile { get; init; }

    /// <summary>The etcd user, when the cluster has authentication on.</summary>
    public string? Username { get; init; }

    /// <summary>The environment variable that holds the user's password.</summary>
    public string? PasswordEnvironmentVariable { get; init; }

    /// <summary>The file that holds the user's password (trailing newline ignored).</summary>
    public string? PasswordFile { get; init; }

    /// <summary>How long one store call may take, fail-over included.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The config path, for error messages.</summary>
    public const string ConfigPath = "store:etcd";

    /// <summary>Equal when every setting is (the endpoints compared item by item), so a config reload can tell a change.</summary>
    public bool Equals(EtcdOptions? other) =>
        other is not null && Endpoints.SequenceEqual(other.Endpoints) && (Prefix, CaFile, CertFile, KeyFile, Username, PasswordEnvironmentVariable, PasswordFile, Timeout)
            == (other.Prefix, other.CaFile, other.CertFile, other.KeyFile, other.Username, other.PasswordEnvironmentVariable, other.PasswordFile, other.Timeout);

    public override int GetHashCode() => HashCode.Combine(Endpoints.Count, Prefix, Username, Timeout);
}

/// <summary>The master key ring's providers and rotation (config section <c>keys</c>).</summary>
public sealed record KeysOptions
{
    public const string DefaultProviderName = "local";

    /// <summary>The provider new versions go to (the ring's first version, and every rotation).</summary>
    public required string Provider { get; init; }

    /// <summary>Automatic rotation when the active version is this old; zero turns it off.</summary>
    public TimeSpan RotationPeriod { get; init; } = TimeSpan.FromDays(90);

    public required IReadOnlyList<KeyProviderOptions> Providers { get; init; }
}

/// <summary>Kinds of master key provider.</summary>
public enum KeyProviderType
{
    Software,
    Passphrase,
    Pkcs11,
}

/// <summary>One configured master key provider. Secrets (passphrase, PIN) are named by where they are, never given.</summary>
public sealed record KeyProviderOptions
{
    public required string Name { get; init; }

    public required KeyProviderType Type { get; init; }

    /// <summary>software: the key file.</summary>
    public string? File { get; init; }

    /// <summary>passphrase: the passphrase; pkcs11: the user PIN — the environment variable that holds it.</summary>
    public string? SecretEnvironmentVariable { get; init; }

    /// <summary>passphrase: the passphrase; pkcs11: the user PIN — the file that holds it (trailing newline ignored).</summary>
    public string? SecretFile { get; init; }

    /// <summary>pkcs11: the module (.so).</summary>
    public string? Library { get; init; }

    /// <summary>pkcs11: the token's label.</summary>
    public string? Token { get; init; }

    /// <summary>pkcs11: the master key's label (later versions add <c>-vN</c>).</summary>
    public string? Label { get; init; }

    /// <summary>The config path of this provider, for error messages.</summary>
    public string ConfigPath => $"keys:providers:{Name}";
}

/// <summary>One ACME CA (config section <c>issuers:NAME</c> with <c>type: acme</c>).</summary>
public sealed record AcmeIssuerOptions
{
    public required string Name { get; init; }

    /// <summary>The CA's directory URL.</summary>
    public required Uri Directory { get; init; }

    /// <summary>Contact URLs for the account (<c>mailto:</c>).</summary>
    public IReadOnlyList<string> Contact { get; init; } = [];

    /// <summary>Whether the operator agrees to the CA's terms of service.</summary>
    public bool AcceptTerms { get; init; }

    /// <summary>PEM file of CA certificates to trust for the directory's TLS (private CAs, tests); null = system trust.</summary>
    public string? CaBundle { get; init; }

    /// <summary>External account binding: key id, and where its HMAC key is (env var or file, base64url).</summary>
    public string? EabKeyId { get; init; }

    public string? EabHmacEnvironmentVariable { get; init; }

    public string? EabHmacFile { get; init; }

    /// <summary>Pick the chain whose root has this common name, when the CA offers alternates.</summary>
    public string? PreferredChain { get; init; }

    /// <summary>Certificate key type for sites that name none.</summary>
    public string? KeyType { get; init; }

    /// <summary>Challenge types to use, in order of preference.</summary>
    public IReadOnlyList<string> Challenges { get; init; } = ["http-01", "tls-alpn-01"];

    /// <summary>The DNS provider for dns-01, when listed.</summary>
    public AcmeDnsOptions? Dns { get; init; }

    /// <summary>The config path, for error messages.</summary>
    public string ConfigPath => $"issuers:{Name}";
}

/// <summary>A DNS-01 provider (config <c>issuers:NAME:dns</c>).</summary>
public sealed record AcmeDnsOptions
{
    /// <summary><c>rfc2136</c> (dynamic update with TSIG) or <c>exec</c> (a command gets action, name, value).</summary>
    public required string Type { get; init; }

    /// <summary>rfc2136: the primary server, host or host:port.</summary>
    public string? Server { get; init; }

    /// <summary>rfc2136: the zone (found by SOA queries when left out).</summary>
    public string? Zone { get; init; }

    /// <summary>rfc2136: the TSIG key name and algorithm (hmac-sha256, hmac-sha512); the secret is in an env var or file (base64).</summary>
    public string? KeyName { get; init; }

    public string Algorithm { get; init; } = "hmac-sha256";

    public string? SecretEnvironmentVariable { get; init; }

    public string? SecretFile { get; init; }

    /// <summary>exec: the command and its first arguments (no shell).</summary>
    public IReadOnlyList<string> Command { get; init; } = [];

    /// <summary>Where to check that the record is visible before validation: nameservers (default: the zone's NS) and their port.</summary>
    public IReadOnlyList<string> Nameservers { get; init; } = [];

    public int? NameserverPort { get; init; }

    /// <summary>How long to wait for the record to be visible.</summary>
    public TimeSpan PropagationTimeout { get; init; } = TimeSpan.FromMinutes(2);
}

/// <summary>The edge listeners.</summary>
public sealed record EdgeOptions
{
    public IPAddress Address { get; init; } = IPAddress.Loopback;

    public int HttpsPort { get; init; } = 8443;

    public int HttpPort { get; init; } = 8080;

    /// <summary>The HTTPS port clients see (for redirects), when a port mapping makes it differ from the listener's.</summary>
    public int? PublicHttpsPort { get; init; }

    /// <summary>How long a client has to send its ClientHello and finish the handshake.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a passthrough connection may carry no bytes in either direction before the edge closes it
    /// (config <c>edge:passthroughIdleTimeout</c>).</summary>
    public TimeSpan PassthroughIdleTimeout { get; init; } = TimeSpan.FromHours(1);

    /// <summary>The host name a ClientHello without SNI is served as (config <c>edge:defaultSite</c>), e.g. for clients
    /// that connect by IP address; null (default): such connections get the alert unrecognized_name, so no site's
    /// certificate is shown to a client that did not name it.</summary>
    public string? DefaultSite { get; init; }

    /// <summary>What terminates TLS for sites without client certificates (config <c>edge:tlsEngine</c>): the edge's
    /// own OpenSSL engine (default; falls back to .NET's with a warning where OpenSSL 3 cannot be loaded) or .NET's
    /// SslStream. Sites that ask for client certificates and TLS-ALPN-01 challenges always use SslStream.</summary>
    public EdgeTlsEngine TlsEngine { get; init; } = EdgeTlsEngine.OpenSsl;

    /// <summary>Where the runtime runs socket completions (config <c>edge:socketCompletions</c>): on the thread pool
    /// (default) or inline on its I/O threads (faster; Gatehouse's own slow work then still runs in
    /// <see cref="ControlPlane"/>; not the default yet, see docs/edge-modes.md "Socket completions inline"). Read by
    /// <c>gatehouse serve</c> before the process first uses a socket; see <see cref="Gatehouse.Edge.SocketCompletions"/>.</summary>
    public EdgeSocketCompletions SocketCompletions { get; init; } = EdgeSocketCompletions.Pool;
}

/// <summary>Where socket completions run (see docs/architecture.md, "Threads").</summary>
public enum EdgeSocketCompletions
{
    /// <summary>On the runtime's I/O threads, with Kestrel's inline scheduling: no thread switch per socket event.</summary>
    Inline,

    /// <summary>Handed to the thread pool (.NET's default).</summary>
    Pool,
}

/// <summary>The TLS implementations the edge can terminate with (see docs/edge-modes.md).</summary>
public enum EdgeTlsEngine
{
    /// <summary>Gatehouse's engine: OpenSSL 3 over memory BIOs, one SSL_CTX per certificate kept with it.</summary>
    OpenSsl,

    /// <summary>.NET's SslStream through Kestrel's HTTPS middleware.</summary>
    DotNet,
}

/// <summary>The admin API listener.</summary>
public sealed record AdminOptions
{
    public IPAddress Address { get; init; } = IPAddress.Loopback;

    public int Port { get; init; } = 9443;
}
