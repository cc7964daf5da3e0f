using Gatehouse.Cli;

namespace Gatehouse;

/// <summary>The <c>gatehouse</c> executable.</summary>
public static class Program
{
    public static Task<int> Main(string[] args) => CommandLine.Build().Parse(args).InvokeAsync();
}
