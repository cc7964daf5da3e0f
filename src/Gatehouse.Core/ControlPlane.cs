using System.Runtime.CompilerServices;

namespace Gatehouse;

/// <summary>
/// Where Gatehouse's own work runs when it is not serving a connection: the certificate manager, key maintenance,
/// the store mirrors and their subscribers, the admin API. Code that has entered the control plane continues on the
/// thread pool after every <c>await</c>, whatever thread completed what it awaited.
/// <para>
/// Why: the edge may run socket completions inline on the runtime's I/O threads (see <c>SocketCompletions</c> in
/// Gatehouse.Edge and docs/architecture.md), which saves two thread hand-offs per proxied request. A continuation
/// then runs on the thread that polled the socket, so anything slow there (generating an RSA key, sealing, rebuilding
/// the route table, a blocking HSM call) would stall every connection that thread serves, and waiting there for
/// another socket would never end. Work that enters the control plane is never run on those threads: its awaits
/// resume through <see cref="Context"/>, which posts to the thread pool. Library code that awaits with
/// <c>ConfigureAwait(false)</c> (gRPC, HttpClient) still continues inline between our awaits, which is the short
/// parsing and buffering the inline mode is meant for.
/// </para>
/// </summary>
public static class ControlPlane
{
    /// <summary>The synchronization context of control-plane work: continuations go to the thread pool.</summary>
    public static SynchronizationContext Context { get; } = new ThreadPoolContext();

    /// <summary>Whether the calling code runs in the control plane.</summary>
    public static bool IsCurrent => SynchronizationContext.Current == Context;

    /// <summary><c>await ControlPlane.Enter();</c> continues on the thread pool inside the control plane: every later
    /// await of the calling method, and of the methods it calls and awaits, resumes there too.</summary>
    public static EnterAwaitable Enter() => default;

    /// <summary>Calls <paramref name="start"/> inside the control plane and returns its task: the synchronous part
    /// runs on the calling thread, every continuation on the thread pool. The caller's own context is left as it was.</summary>
    public static T Run<T>(Func<T> start)
    {
        var previous = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(Context);
        try
        {
            return start();
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(previous);
        }
    }

    public readonly struct EnterAwaitable
    {
        public Awaiter GetAwaiter() => default;
    }

    public readonly struct Awaiter : ICriticalNotifyCompletion
    {
        public bool IsCompleted => IsCurrent && Thread.CurrentThread.IsThreadPoolThread;

        public void GetResult()
        {
        }

        public void OnCompleted(Action continuation) => Context.Post(static state => ((Action)state!)(), continuation);

        public void UnsafeOnCompleted(Action continuation) => OnCompleted(continuation);
    }

    private sealed class ThreadPoolContext : SynchronizationContext
    {
        public override void Post(SendOrPostCallback callback, object? state) =>
            ThreadPool.UnsafeQueueUserWorkItem(static work => work.Context.Invoke(work.Callback, work.State), new Work(this, callback, state), preferLocal: false);

        public override void Send(SendOrPostCallback callback, object? state) => Invoke(callback, state);

        public override SynchronizationContext CreateCopy() => this;

        private void Invoke(SendOrPostCallback callback, object? state)
        {
            var previous = Current;
            SetSynchronizationContext(this);
            try
            {
                callback(state);
            }
            finally
            {
                SetSynchronizationContext(previous);
            }
        }

        private readonly record struct Work(ThreadPoolContext Context, SendOrPostCallback Callback, object? State);
    }
}
