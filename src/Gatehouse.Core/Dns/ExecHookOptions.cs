namespace Gatehouse.Dns;

/// <summary>
/// A DNS-01 provider that runs a command for each change, for DNS hosts without RFC 2136: the command gets
/// <c>present</c> or <c>cleanup</c>, the record name and the value as its last three arguments, and the same in
/// <c>GATEHOUSE_DNS_ACTION</c>, <c>GATEHOUSE_DNS_NAME</c> and <c>GATEHOUSE_DNS_VALUE</c>. It runs without a shell.
/// Exit status 0 means done; anything else fails the change with the end of the command's stderr. Like every
/// provider, the command should treat adding a value that is there, or removing one that is not, as success, and
/// leave other values at the same name alone.
/// </summary>
public sealed record ExecHookOptions
{
    /// <summary>The executable (a path, or a name looked up in PATH).</summary>
    public required string Command { get; init; }

    /// <summary>Arguments put before the action, name and value.</summary>
    public IReadOnlyList<string> Arguments { get; init; } = [];

    /// <summary>Extra environment variables for the command (credentials for a DNS API, say).</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>The command's working directory; null: the current one.</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>How long the command may run before it and its children are killed.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Where to wait for records to be visible; by default the zone's authoritative servers, found through
    /// the system resolver.</summary>
    public DnsVisibilityOptions Visibility { get; init; } = new();
}
