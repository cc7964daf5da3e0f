using System.Diagnostics;

namespace Gatehouse.IntegrationTests.Infrastructure;

/// <summary>Runs real command-line tools (the gatehouse executable, curl, openssl, softhsm2-util) to completion.</summary>
public static class Tools
{
    /// <summary>The gatehouse executable built next to the tests.</summary>
    public static string GatehouseDll => Path.Combine(AppContext.BaseDirectory, "gatehouse.dll");

    /// <summary>Runs <c>gatehouse ARGS</c>.</summary>
    public static Task<ToolResult> GatehouseAsync(string workingDirectory, string[] args, TimeSpan? timeout = null, Dictionary<string, string>? environment = null) =>
        RunAsync("dotnet", [GatehouseDll, .. args], workingDirectory, null, timeout, environment);

    /// <summary>Runs a tool, feeding <paramref name="stdin"/>; kills it and throws when it outlives <paramref name="timeout"/> (30 s).</summary>
    public static async Task<ToolResult> RunAsync(string tool, string[] args, string workingDirectory, string? stdin = null, TimeSpan? timeout = null, Dictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(tool) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var (key, value) in environment ?? [])
        {
            start.Environment[key] = value;
        }

        start.Environment["COLUMNS"] = "200";
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.StandardInput.WriteAsync(stdin ?? "");
        process.StandardInput.Close();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(30));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{tool} {string.Join(' ', args)} did not finish in time");
        }

        return new ToolResult(process.ExitCode, await output, await error);
    }
}

/// <summary>What a tool printed and how it ended.</summary>
public sealed record ToolResult(int ExitCode, string StandardOutput, string StandardError);
