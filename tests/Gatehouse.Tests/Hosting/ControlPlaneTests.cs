using Gatehouse.Edge;

namespace Gatehouse.Tests.Hosting;

/// <summary>Where Gatehouse's own work continues: <see cref="ControlPlane"/>, and the probe of where socket
/// completions run.</summary>
public sealed class ControlPlaneTests
{
    /// <summary>A dedicated thread completing what the control plane awaits stands in for a runtime I/O thread
    /// completing a socket read: the continuation must not run on it.</summary>
    [Fact]
    public async Task AfterEnter_AnAwaitCompletedOnAnotherThread_ResumesOnThePoolInTheControlPlane()
    {
        var completion = new TaskCompletionSource(); // continuations run synchronously unless a context says otherwise
        using var waiting = new ManualResetEventSlim();
        var work = Task.Run(async () =>
        {
            await ControlPlane.Enter();
            Assert.True(ControlPlane.IsCurrent);
            var pending = completion.Task;
            waiting.Set();
            await pending;
            return (Thread.CurrentThread.IsThreadPoolThread, ControlPlane.IsCurrent, Environment.CurrentManagedThreadId);
        });
        Assert.True(waiting.Wait(TimeSpan.FromSeconds(10)));
        var completer = 0;
        var thread = new Thread(() =>
        {
            completer = Environment.CurrentManagedThreadId;
            completion.SetResult();
        });
        thread.Start();
        thread.Join();

        var (onPool, inControlPlane, resumedOn) = await work.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(onPool);
        Assert.True(inControlPlane);
        Assert.NotEqual(completer, resumedOn);
    }

    [Fact]
    public async Task Run_StartsInTheControlPlane_AndLeavesTheCallersContext()
    {
        var callers = new SynchronizationContext();
        SynchronizationContext.SetSynchronizationContext(callers);
        try
        {
            var sawControlPlane = false;
            var task = ControlPlane.Run(async () =>
            {
                sawControlPlane = ControlPlane.IsCurrent;
                await Task.Yield();
                return ControlPlane.IsCurrent && Thread.CurrentThread.IsThreadPoolThread;
            });
            Assert.Same(callers, SynchronizationContext.Current);
            Assert.True(sawControlPlane);
            Assert.True(await task.WaitAsync(TimeSpan.FromSeconds(10)));
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(null);
        }
    }

    /// <summary>The probe reports what the runtime does in this process: inline exactly when the runtime's switch was
    /// on when the process first used a socket (the test host does not set it unless told to).</summary>
    [Fact]
    public void SocketCompletionsProbe_MatchesTheRuntimeSwitch()
    {
        Assert.Equal(Environment.GetEnvironmentVariable(SocketCompletions.Variable) == "1", SocketCompletions.RunInline);
    }
}
