using Gatehouse.Cli;

namespace Gatehouse;

/// <summary>The <c>gatehouse</c> executable.</summary>
public static class Program
{
    public static Task<int> Main(string[] args)
    {
        // Before anything loads OpenSSL: it reads its configuration once.
        Gatehouse.Edge.Tls.TlsProcessDefaults.Apply();
        if (Console.IsOutputRedirected)
        {
            // Piped into a file or another program: no terminal width to wrap tables at.
            Spectre.Console.AnsiConsole.Profile.Width = 240;
        }

        return CommandLine.Build().Parse(args).InvokeAsync();
    }
}
