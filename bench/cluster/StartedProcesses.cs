using System.Globalization;

/// <summary>
/// Every process the bench starts, appended to a file as "PID COMM" the moment it is started, so that bench/cluster/run
/// can stop them by id (after checking /proc/PID/comm) when the bench itself dies before its own clean-up runs.
/// </summary>
internal sealed class StartedProcesses(string path)
{
    private readonly Lock _gate = new();

    public void Add(int pid, string comm)
    {
        lock (_gate)
        {
            File.AppendAllText(path, pid.ToString(CultureInfo.InvariantCulture) + " " + comm + "\n");
        }
    }

    public void Add(IEnumerable<int> pids, string comm)
    {
        foreach (var pid in pids)
        {
            Add(pid, comm);
        }
    }
}
