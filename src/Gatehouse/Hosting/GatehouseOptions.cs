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

    /// <summary>The built-in sample backend's port on 127.0.0.1, or null when it is off.</summary>
    public int? WelcomePort { get; init; }

    /// <summary>The config file's sites, with the configuration path of each.</summary>
    public IReadOnlyList<(SiteDefinition Site, string Path)> Sites { get; init; } = [];

    public string StorePath => Path.Combine(DataDirectory, "gatehouse.db");

    public string MasterKeyPath => Path.Combine(DataDirectory, "master.key");

    public string AdminTokenPath => Path.Combine(DataDirectory, "admin.token");

    public string LocalCaRootPath => Path.Combine(DataDirectory, "local-ca-root.pem");
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
}

/// <summary>The admin API listener.</summary>
public sealed record AdminOptions
{
    public IPAddress Address { get; init; } = IPAddress.Loopback;

    public int Port { get; init; } = 9443;
}
