using System.Text;

namespace Gatehouse.Storage.Etcd;

/// <summary>How <see cref="EtcdStore"/> reaches an etcd v3 cluster. Secrets (the password) are read by the caller
/// from wherever the configuration names, never from the configuration itself, and are left out of
/// <see cref="ToString"/>.</summary>
public sealed record EtcdStoreOptions
{
    /// <summary>The default per-request timeout.</summary>
    public static readonly TimeSpan DefaultRequestTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The client URLs of the cluster's members (<c>http://</c> or <c>https://</c>, host and port only).
    /// Requests go to one member and move to the next when it cannot be reached.</summary>
    public required IReadOnlyList<Uri> Endpoints { get; init; }

    /// <summary>Prepended to every store key, so several Gatehouse systems can share one cluster: with
    /// <c>/prod-edge</c>, <c>/gatehouse/v1/sites/x</c> is etcd key <c>/prod-edge/gatehouse/v1/sites/x</c>. Empty, or
    /// starts with <c>/</c> and does not end with one.</summary>
    public string KeyPrefix { get; init; } = "";

    /// <summary>PEM file of the CA certificates that sign the members' TLS certificates; null: the system's trust.</summary>
    public string? CaFile { get; init; }

    /// <summary>PEM client certificate for mutual TLS (with <see cref="KeyFile"/>).</summary>
    public string? CertificateFile { get; init; }

    /// <summary>PEM private key of <see cref="CertificateFile"/>.</summary>
    public string? KeyFile { get; init; }

    /// <summary>The etcd user, when the cluster has authentication on (with <see cref="Password"/>).</summary>
    public string? Username { get; init; }

    /// <summary>The etcd user's password, as read by the caller from an environment variable or a file.</summary>
    public string? Password { get; init; }

    /// <summary>How long one store call may take, fail-over to other members included, before it throws
    /// <see cref="StoreUnavailableException"/>.</summary>
    public TimeSpan RequestTimeout { get; init; } = DefaultRequestTimeout;

    /// <summary>The endpoints as <c>scheme://host:port</c>, for messages.</summary>
    public string EndpointList => string.Join(", ", Endpoints.Select(e => e.GetLeftPart(UriPartial.Authority)));

    /// <summary>Throws <see cref="ArgumentException"/> naming the first setting that cannot work.</summary>
    public void Validate()
    {
        if (Endpoints is null || Endpoints.Count == 0)
        {
            throw new ArgumentException("At least one etcd endpoint is needed.", nameof(Endpoints));
        }

        foreach (var endpoint in Endpoints)
        {
            if (DescribeEndpointProblem(endpoint) is { } problem)
            {
                throw new ArgumentException($"The etcd endpoint '{endpoint}' {problem}.", nameof(Endpoints));
            }
        }

        if (Endpoints.Select(e => e.Scheme).Distinct(StringComparer.Ordinal).Count() > 1)
        {
            throw new ArgumentException("The etcd endpoints mix http and https.", nameof(Endpoints));
        }

        if (DescribePrefixProblem(KeyPrefix) is { } prefixProblem)
        {
            throw new ArgumentException($"The etcd key prefix '{KeyPrefix}' {prefixProblem}.", nameof(KeyPrefix));
        }

        if ((CertificateFile is null) != (KeyFile is null))
        {
            throw new ArgumentException("A client certificate for etcd needs both its certificate file and its key file.", nameof(CertificateFile));
        }

        if ((CaFile ?? CertificateFile) is not null && Endpoints[0].Scheme != Uri.UriSchemeHttps)
        {
            throw new ArgumentException("TLS files for etcd are given but the endpoints are not https.", nameof(Endpoints));
        }

        if (string.IsNullOrEmpty(Username) != string.IsNullOrEmpty(Password))
        {
            throw new ArgumentException("etcd authentication needs both a user name and a password.", nameof(Username));
        }

        if (RequestTimeout <= TimeSpan.Zero || RequestTimeout > TimeSpan.FromMinutes(5))
        {
            throw new ArgumentException($"The etcd request timeout {RequestTimeout} is outside (0, 5 min].", nameof(RequestTimeout));
        }
    }

    /// <summary>Why <paramref name="endpoint"/> cannot be an etcd client URL, or null when it can.</summary>
    public static string? DescribeEndpointProblem(Uri endpoint)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        if (!endpoint.IsAbsoluteUri || (endpoint.Scheme != Uri.UriSchemeHttp && endpoint.Scheme != Uri.UriSchemeHttps))
        {
            return "is not an http:// or https:// URL";
        }

        if (endpoint.UserInfo.Length > 0)
        {
            return "carries user information (give the user with username and the password through passwordEnv or passwordFile)";
        }

        if (endpoint.AbsolutePath != "/" || endpoint.Query.Length > 0 || endpoint.Fragment.Length > 0)
        {
            return "has a path, query or fragment (give scheme, host and port only)";
        }

        return string.IsNullOrEmpty(endpoint.Host) ? "has no host" : null;
    }

    /// <summary>Why <paramref name="prefix"/> cannot be a key prefix, or null when it can.</summary>
    public static string? DescribePrefixProblem(string? prefix)
    {
        if (string.IsNullOrEmpty(prefix))
        {
            return null;
        }

        if (prefix[0] != '/' || prefix[^1] == '/')
        {
            return "must start with '/' and not end with one";
        }

        if (prefix.Length > 256)
        {
            return "is longer than 256 characters";
        }

        return prefix.Any(c => char.IsControl(c) || char.IsWhiteSpace(c)) ? "has control or white-space characters" : null;
    }

    private bool PrintMembers(StringBuilder builder)
    {
        // No password here: options end up in logs and exception messages.
        builder.Append("Endpoints = ").Append(EndpointList)
            .Append(", KeyPrefix = ").Append(KeyPrefix)
            .Append(", CaFile = ").Append(CaFile)
            .Append(", CertificateFile = ").Append(CertificateFile)
            .Append(", KeyFile = ").Append(KeyFile)
            .Append(", Username = ").Append(Username)
            .Append(", Password = ").Append(Password is null ? "" : "(set)")
            .Append(", RequestTimeout = ").Append(RequestTimeout);
        return true;
    }
}
