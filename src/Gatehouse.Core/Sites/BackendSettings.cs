namespace Gatehouse.Sites;

/// <summary>
/// How the edge speaks TLS to a re-encrypt site's backends. Stored in the site record, so every instance verifies
/// the same way; the client key is sealed by <c>EnvelopeCipher</c> with the site's store key as associated data.
/// </summary>
public sealed record BackendTls
{
    /// <summary>The certificates (PEM) that anchor the backends' chains; null means the system trust store.</summary>
    public string? CaPem { get; init; }

    /// <summary>The name the backend's certificate must be valid for; null means each backend URL's host.</summary>
    public string? ServerName { get; init; }

    /// <summary>The SNI name sent in the ClientHello; null means <see cref="ServerName"/> (or the URL's host).</summary>
    public string? Sni { get; init; }

    /// <summary>The client certificate presented to backends (leaf first, then intermediates), PEM; null for none.</summary>
    public string? ClientCertificatePem { get; init; }

    /// <summary>The client certificate's PKCS#8 private key, sealed for the site's store key.</summary>
    public byte[]? SealedClientKey { get; init; }

    /// <summary>Value equality (records compare arrays by reference).</summary>
    public static bool Same(BackendTls? a, BackendTls? b) =>
        ReferenceEquals(a, b)
        || (a is not null && b is not null && a.CaPem == b.CaPem && a.ServerName == b.ServerName && a.Sni == b.Sni
            && a.ClientCertificatePem == b.ClientCertificatePem
            && (a.SealedClientKey ?? []).AsSpan().SequenceEqual(b.SealedClientKey ?? []));
}

/// <summary>
/// How a site's HTTP backends are watched. Active checks run when <see cref="Path"/> is set; passive detection
/// (transport failures take a backend out for <see cref="ReactivateAfter"/>) is on unless turned off. A site without
/// this record gets passive detection with the defaults.
/// </summary>
public sealed record BackendHealthCheck
{
    /// <summary>The path (and optional query) probed with GET on every backend; null turns active checks off.</summary>
    public string? Path { get; init; }

    /// <summary>Time between two probes of a backend.</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a probe may take before it counts as failed.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Consecutive failed probes that take a backend out.</summary>
    public int UnhealthyAfter { get; init; } = 2;

    /// <summary>Consecutive successful probes (2xx) that bring it back.</summary>
    public int HealthyAfter { get; init; } = 1;

    /// <summary>Whether transport failures of real requests take a backend out.</summary>
    public bool Passive { get; init; } = true;

    /// <summary>How long passive detection keeps a failing backend out before it is tried again.</summary>
    public TimeSpan ReactivateAfter { get; init; } = TimeSpan.FromSeconds(30);
}
