using System.Net;
using System.Net.Sockets;

namespace Gatehouse.Edge;

/// <summary>
/// Where the runtime runs socket completions: on its I/O threads, inline (<c>edge:socketCompletions: inline</c>), or
/// handed to the thread pool (.NET's and Gatehouse's default).
/// <para>
/// Handing every readable socket from the thread that polls it to a pool worker costs two thread switches per proxied
/// request (the client's socket, then the backend's); on one core that was about a third of Gatehouse's time per
/// keep-alive request (docs/edge-modes.md). Inline, the thread that polls runs the connection's work, the way nginx's
/// worker does. The runtime reads its switch (<see cref="Variable"/>) once, when the process first uses a socket, so
/// <see cref="RequestInline"/> runs before that, and <see cref="RunInline"/> says what the runtime actually does.
/// Gatehouse's own slow work never runs on those threads: it runs in <see cref="ControlPlane"/>.
/// </para>
/// </summary>
public static class SocketCompletions
{
    /// <summary>The runtime's switch (System.Net.Sockets, Unix): "1" runs completions on the I/O threads.</summary>
    public const string Variable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>What <see cref="Outcome"/> says when the switch was set here.</summary>
    public const string Requested = "requested";

    private static readonly Lazy<bool> Probe = new(ProbeInline, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Asks the runtime for inline completions unless the operator set <see cref="Variable"/> (either way);
    /// takes effect only when no socket was used in this process yet. Returns what was done, for the log.</summary>
    public static string RequestInline() => Outcome = RequestOnce();

    /// <summary>What <see cref="RequestInline"/> did in this process (null: it did not run).</summary>
    public static string? Outcome { get; private set; }

    private static string RequestOnce()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS() && !OperatingSystem.IsFreeBSD())
        {
            return "not Unix: the platform's I/O completion threads run completions";
        }

        if (Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } set)
        {
            return $"{Variable}={set} is set; left as it is";
        }

        Environment.SetEnvironmentVariable(Variable, "1");
        return Requested;
    }

    /// <summary>Whether socket completions in this process run on the I/O threads, found by receiving one byte over
    /// loopback and looking at the thread that completes the receive (once per process).</summary>
    public static bool RunInline => Probe.Value;

    private static bool ProbeInline()
    {
        try
        {
            using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen(1);
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            client.Connect(listener.LocalEndPoint!);
            using var server = listener.Accept();
            var buffer = new byte[1];
            // Pending before the byte is sent, so it completes through the runtime's event loop, not synchronously.
            var receive = server.ReceiveAsync(buffer.AsMemory(), SocketFlags.None).AsTask();
            var onPool = receive.ContinueWith(_ => Thread.CurrentThread.IsThreadPoolThread, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            client.Send([1]);
            return onPool.Wait(TimeSpan.FromSeconds(10)) && !onPool.Result;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
