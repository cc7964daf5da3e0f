using Microsoft.Extensions.Logging;

namespace Gatehouse.Dns;

/// <summary>Log events of the DNS-01 providers (ids 82xx). Values of challenge records are not secret, but they are
/// left out: names are enough to follow an issuance.</summary>
internal static partial class DnsLog
{
    [LoggerMessage(EventId = 8201, Level = LogLevel.Information, Message = "Added a TXT value at {Name} in zone {Zone} (DNS server {Server})")]
    public static partial void Presented(ILogger logger, string name, string zone, string server);

    [LoggerMessage(EventId = 8202, Level = LogLevel.Information, Message = "Removed a TXT value at {Name} in zone {Zone} (DNS server {Server})")]
    public static partial void CleanedUp(ILogger logger, string name, string zone, string server);

    [LoggerMessage(EventId = 8203, Level = LogLevel.Debug, Message = "{Name} is in zone {Zone} (found through {Server})")]
    public static partial void ZoneFound(ILogger logger, string name, string zone, string server);

    [LoggerMessage(EventId = 8204, Level = LogLevel.Information, Message = "The TXT value at {Name} is visible at {Servers} after {Elapsed}")]
    public static partial void Visible(ILogger logger, string name, string servers, TimeSpan elapsed);

    [LoggerMessage(EventId = 8205, Level = LogLevel.Debug, Message = "The TXT value at {Name} is not visible at {Server} yet: {Answer}")]
    public static partial void NotVisibleYet(ILogger logger, string name, string server, string answer);

    [LoggerMessage(EventId = 8206, Level = LogLevel.Information, Message = "DNS hook {Command} {Action} {Name} finished in {Elapsed}")]
    public static partial void HookFinished(ILogger logger, string command, string action, string name, TimeSpan elapsed);
}
