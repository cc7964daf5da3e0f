// Wrap+unwrap throughput and latency of the master key providers, single-threaded and concurrent.
// Usage: KeysBench [--softhsm-lib PATH --token LABEL --pin PIN] [--seconds N]
// Every loop is bounded by a count and a time limit.
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Gatehouse.Keys;
using Gatehouse.Keys.Pkcs11;

var arguments = args.Select((a, i) => (a, i)).ToDictionary(p => p.a, p => p.i);
string? Arg(string name) => arguments.TryGetValue(name, out var i) && i + 1 < args.Length ? args[i + 1] : null;
var seconds = double.Parse(Arg("--seconds") ?? "3", CultureInfo.InvariantCulture);
const int MaxOperationsPerThread = 2_000_000;

var providers = new List<(string Name, IMasterKey Key, IDisposable Owner)>();
var directory = Directory.CreateTempSubdirectory("gatehouse-keysbench-");
var software = SoftwareKeyFileProvider.OpenOrCreate("local", Path.Combine(directory.FullName, "master.key"));
var softwareVersion = software.CreateVersion("bench", 2);
providers.Add(("software", softwareVersion.Key, software));
if (Arg("--softhsm-lib") is { } library)
{
    var hsm = new Pkcs11MasterKeyProvider(new Pkcs11Options
    {
        Name = "hsm", LibraryPath = library, TokenLabel = Arg("--token")!, Pin = Arg("--pin")!, KeyLabel = "bench-" + Environment.ProcessId, PoolSize = 8,
    });
    var version = hsm.CreateVersion("bench", 1);
    providers.Add(("softhsm2", version.Key, new Cleanup(() => { hsm.DestroyVersion("bench", 1, version.Reference); hsm.Dispose(); })));
}

Console.WriteLine("provider   threads  wrap+unwrap/s   p50 µs   p99 µs   (one op = wrap 32-byte data key + unwrap it)");
foreach (var (name, key, _) in providers)
{
    foreach (var threads in new[] { 1, 2, 8 })
    {
        var result = Run(key, threads, TimeSpan.FromSeconds(seconds));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name,-10} {threads,7}  {result.PerSecond,13:N0}  {result.P50,7:F1}  {result.P99,7:F1}"));
    }
}

foreach (var (_, key, owner) in providers)
{
    key.Dispose();
    owner.Dispose();
}

directory.Delete(recursive: true);
return 0;

static (double PerSecond, double P50, double P99) Run(IMasterKey key, int threads, TimeSpan duration)
{
    // Warm-up (JIT, session pool).
    Loop(key, TimeSpan.FromMilliseconds(300), 20_000);
    var latencies = new List<double>[threads];
    var counts = new long[threads];
    var clock = Stopwatch.StartNew();
    Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
    {
        var (count, samples) = Loop(key, duration, MaxOperationsPerThread);
        counts[t] = count;
        latencies[t] = samples;
    });
    var elapsed = clock.Elapsed.TotalSeconds;
    var all = latencies.SelectMany(l => l).Order().ToArray();
    return (counts.Sum() / elapsed, all[all.Length / 2], all[(int)(all.Length * 0.99)]);
}

static (long Count, List<double> Samples) Loop(IMasterKey key, TimeSpan duration, int maxOperations)
{
    Span<byte> dataKey = stackalloc byte[32];
    Span<byte> unwrapped = stackalloc byte[32];
    RandomNumberGenerator.Fill(dataKey);
    var associatedData = "gatehouse-dek-v1 bench /gatehouse/v1/certs/bench.example"u8.ToArray();
    var samples = new List<double>();
    var end = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
    long count = 0;
    while (count < maxOperations)
    {
        var start = Stopwatch.GetTimestamp();
        if (start > end)
        {
            break;
        }

        var wrapped = key.WrapKey(dataKey, associatedData);
        if (!key.TryUnwrapKey(wrapped, associatedData, unwrapped) || !unwrapped.SequenceEqual(dataKey))
        {
            throw new InvalidOperationException("round trip failed");
        }

        samples.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
        count++;
    }

    return (count, samples);
}

internal sealed class Cleanup(Action action) : IDisposable
{
    public void Dispose() => action();
}
