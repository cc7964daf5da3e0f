using System.CommandLine;

namespace Gatehouse.Cli;

/// <summary>The command tree; each command lives in its own file.</summary>
internal static class CommandLine
{
    /// <summary>Exit code for bad configuration or usage.</summary>
    public const int UsageError = 2;

    /// <summary>Exit code for a failed operation (API refused, server unreachable).</summary>
    public const int Failure = 1;

    public static RootCommand Build()
    {
        var root = new RootCommand("Gatehouse: the TLS edge that issues, renews and serves every site's certificate, with keys encrypted at rest.");
        root.Subcommands.Add(ServeCommand.Create());
        root.Subcommands.Add(SitesCommand.Create());
        root.Subcommands.Add(CertsCommand.Create());
        root.Subcommands.Add(IssuersCommand.Create());
        root.Subcommands.Add(KeysCommand.Create());
        return root;
    }
}
