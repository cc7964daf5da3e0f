using System.Globalization;
using System.Text;

/// <summary>Joins the samples with Gatehouse's log and writes the tables.</summary>
internal static class Analysis
{
    private const int IssuingEvent = 3001;
    private const int FailedEvent = 3003;
    private const int AcmeOrderDoneEvent = 7009;

    public static string Report(List<PhaseResult> results, List<LogEvent> events, WireTimes? wire, CpuSummary cpu, long lifetimePeakKiB, int concurrency, int maxConcurrentIssuances, Cores? cores)
    {
        var index = new LogIndex(events);
        var text = new StringBuilder();
        text.AppendLine("| phase | how | served | wall | certificates/min | latency p50 | p99 | max | ACME transaction p50 | p99 | Gatehouse CPU | per certificate | Pebble + challtestsrv CPU | Gatehouse peak RSS |");
        text.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var phase in results)
        {
            var served = phase.Samples.Where(s => s.Served is not null).ToList();
            var latencies = served.Select(s => (s.Served!.Value - s.AddStart).TotalSeconds).Order().ToList();
            var acme = served.Select(s => index.For(s.Host).AcmeSeconds).OfType<double>().Order().ToList();
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {phase.Name} | {phase.How} | {served.Count}/{phase.Requested}{(phase.StoppedByLimit ? " (time limit)" : "")} | {phase.Wall.TotalSeconds:0.00} s | {served.Count / phase.Wall.TotalMinutes:0} "
                + $"| {S(Percentile(latencies, 50))} | {S(Percentile(latencies, 99))} | {S(latencies.LastOrDefault(double.NaN))} "
                + $"| {S(Percentile(acme, 50))} | {S(Percentile(acme, 99))} "
                + $"| {phase.GatehouseCpu:0.00} s | {1000 * phase.GatehouseCpu / Math.Max(1, served.Count):0} ms | {phase.CaCpu:0.00} s "
                + $"| {phase.PeakKiB / 1024.0:0} MiB{(phase.PeakIsPerPhase ? "" : " (since start)")} |");
        }

        text.AppendLine();
        text.AppendLine("Where the time goes, per certificate, p50 / p99 in ms (log timestamps have 1 ms resolution; the served time is the first successful probe, taken every 2 ms once \"Issued\" is logged):");
        text.AppendLine();
        text.AppendLine("| phase | POST /v1/sites | answered → \"Issuing\" (3001) | ACME transaction (7009) | ACME done → \"Issued\" (3002) | \"Issued\" → served on a handshake | of which the serving handshake | total |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var phase in results)
        {
            var parts = Parts(phase, index);
            text.Append(CultureInfo.InvariantCulture, $"| {phase.Name} ");
            foreach (var column in new Func<TimeParts, double?>[] { p => p.Api, p => p.Scheduling, p => p.Acme, p => p.Finishing, p => p.Serving, p => p.Handshake, p => p.Total })
            {
                var values = parts.Select(column).OfType<double>().Order().ToList();
                text.Append(CultureInfo.InvariantCulture, $"| {Ms(Percentile(values, 50))} / {Ms(Percentile(values, 99))} ");
            }

            text.AppendLine("|");
        }

        if (wire is not null)
        {
            text.AppendLine();
            text.AppendLine("On the wire, timed by relays in the bench (Gatehouse → relay → Pebble for ACME over TLS, one exchange = one request and its answer, TLS handshakes left out; Pebble → relay → edge for HTTP-01). Answer time = first answer byte − last request byte, ms:");
            text.AppendLine();
            text.AppendLine("| phase | ACME requests | per certificate | Pebble answer p50 / p99 / max | Pebble answer time per certificate (sum) | HTTP-01 validations | edge answer p50 / p99 / max |");
            text.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
            foreach (var phase in results)
            {
                var served = Math.Max(1, phase.Samples.Count(s => s.Served is not null));
                var acme = wire.Acme.Where(e => e.Sent >= phase.Start && e.Sent <= phase.End).Select(e => e.ServerTime.TotalMilliseconds).Order().ToList();
                var validations = wire.Validations.Where(e => e.Sent >= phase.Start && e.Sent <= phase.End).Select(e => e.ServerTime.TotalMilliseconds).Order().ToList();
                text.AppendLine(CultureInfo.InvariantCulture,
                    $"| {phase.Name} | {acme.Count} | {acme.Count / (double)served:0.0} | {Ms1(Percentile(acme, 50))} / {Ms1(Percentile(acme, 99))} / {Ms1(acme.LastOrDefault(double.NaN))} | {acme.Sum() / served:0} "
                    + $"| {validations.Count} | {Ms1(Percentile(validations, 50))} / {Ms1(Percentile(validations, 99))} / {Ms1(validations.LastOrDefault(double.NaN))} |");
            }
        }

        text.AppendLine();
        text.AppendLine("CPU use during each phase (cores = CPU seconds / wall seconds; a core's busy share is from /proc/stat, kernel work on it included), and what the log says:");
        text.AppendLine();
        var coreColumns = cores is null ? "" : $" core {cores.Gatehouse} busy (Gatehouse alone) | core {cores.Ca} busy (Pebble, challtestsrv, bench) |";
        text.AppendLine("| phase | Gatehouse cores | Pebble + challtestsrv cores | bench cores |" + coreColumns + " Gatehouse RSS at end | handshake probes | issuance attempts | failures (3003) | warnings/errors logged |");
        text.AppendLine("|---|---:|---:|---:|" + (cores is null ? "" : "---:|---:|") + "---:|---:|---:|---:|---:|");
        foreach (var phase in results)
        {
            var wall = phase.Wall.TotalSeconds;
            var hosts = phase.Samples.Select(s => s.Host).ToHashSet(StringComparer.Ordinal);
            var attempts = hosts.Sum(h => index.For(h).Attempts);
            var failures = hosts.Sum(h => index.For(h).Failures);
            var warnings = events.Count(e => e.Level is "Warning" or "Error" or "Critical" && e.Timestamp >= phase.Start.AddMilliseconds(-1) && e.Timestamp <= phase.End);
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {phase.Name} | {phase.GatehouseCpu / wall:0.00} | {phase.CaCpu / wall:0.00} | {phase.BenchCpu / wall:0.00} |{(phase.CoreBusy is { } busy ? $" {100 * busy.Gatehouse / wall:0} % | {100 * busy.Ca / wall:0} % |" : "")} {phase.RssEndKiB / 1024.0:0} MiB | {phase.Samples.Sum(s => s.Probes)} | {attempts} | {failures} | {warnings} |");
        }

        text.AppendLine(CultureInfo.InvariantCulture, $"| idle, 3 s after the last phase | {cpu.IdleCores:0.00} | | |{(cores is null ? "" : " | |")} | | | | |");
        text.AppendLine();
        if (cores is not null)
        {
            foreach (var phase in results.Where(r => !r.Name.StartsWith("warm-up", StringComparison.Ordinal) && r.CoreBusy is not null))
            {
                text.AppendLine(Limit(phase, cores));
            }

            text.AppendLine();
        }
        text.AppendLine(CultureInfo.InvariantCulture, $"After the warm-up rounds, the bench waited {cpu.Settled.TotalSeconds:0.0} s in all for Gatehouse's background JIT to die down (last second: {cpu.SettledCores:0.00} cores). Gatehouse CPU from process start to the end of the run: {cpu.TotalSeconds:0.0} s.");
        text.AppendLine();
        foreach (var phase in results.Where(r => r.Samples.Count >= 8 && r.Samples.All(s => s.GatehouseCpuAfter is not null)))
        {
            // CPU between one certificate served and the next (the first from the phase start), by quarter of the phase.
            var cumulative = phase.Samples.Select(s => s.GatehouseCpuAfter!.Value).ToList();
            var each = cumulative.Select((c, i) => 1000 * (i == 0 ? c : c - cumulative[i - 1])).ToList();
            var quarter = each.Count / 4;
            var quarters = Enumerable.Range(0, 4).Select(q => (From: q * quarter + 1, To: q == 3 ? each.Count : (q + 1) * quarter)).Select(r => $"{r.From}–{r.To}: {each.Skip(r.From - 1).Take(r.To - r.From + 1).Average():0} ms");
            text.AppendLine(CultureInfo.InvariantCulture, $"{phase.Name}: Gatehouse CPU per certificate by quarter of the phase (the site count grows by one per certificate): {string.Join(", ", quarters)}.");
        }

        text.AppendLine(CultureInfo.InvariantCulture, $"Gatehouse peak RSS over the whole run (VmHWM): {lifetimePeakKiB / 1024.0:0} MiB. Concurrency {concurrency}; maxConcurrentIssuances {maxConcurrentIssuances}.");
        var sequential = results.FirstOrDefault(r => r.Name == "sequential");
        if (sequential is not null)
        {
            var perMinute = sequential.Samples.Count(s => s.Served is not null) / sequential.Wall.TotalMinutes;
            foreach (var other in results.Where(r => r.Name != "sequential" && !r.Name.StartsWith("warm-up", StringComparison.Ordinal)))
            {
                var rate = other.Samples.Count(s => s.Served is not null) / other.Wall.TotalMinutes;
                var outstanding = other.Name.StartsWith("burst", StringComparison.Ordinal) ? maxConcurrentIssuances : concurrency;
                text.AppendLine(CultureInfo.InvariantCulture, $"{other.Name}: {rate / perMinute:0.0}× the sequential rate with up to {outstanding} issuances at once ({100 * rate / (perMinute * outstanding):0}% of {outstanding}× sequential).");
            }
        }

        foreach (var phase in results.Where(r => r.Name.StartsWith("burst", StringComparison.Ordinal)))
        {
            text.Append(Slots(phase, index, maxConcurrentIssuances));
        }

        if (wire is not null && results.FirstOrDefault(r => r.Name == "sequential") is { } seq && seq.Samples.Any(s => s.Served is not null))
        {
            text.AppendLine();
            text.Append(Timeline(seq, events, wire));
        }

        return text.ToString();
    }

    /// <summary>How busy the certificate manager kept its issuance slots while a backlog waited: the time each
    /// certificate spent between "Issuing" and "Issued" over slots × window, and the gap from one "Issued" to the next
    /// "Issuing" (what a slot costs to hand over: record written, lock released, next lock taken, record read).</summary>
    /// <summary>Which side's core was saturated during <paramref name="phase"/>: a side whose core was busy at least
    /// <see cref="SaturatedShare"/> of the wall time sets the rate; when neither was, the waits do (round trips, polling).</summary>
    private static string Limit(PhaseResult phase, Cores cores)
    {
        var wall = phase.Wall.TotalSeconds;
        var (gatehouse, ca) = (phase.CoreBusy!.Value.Gatehouse / wall, phase.CoreBusy!.Value.Ca / wall);
        var verdict = (gatehouse >= SaturatedShare, ca >= SaturatedShare) switch
        {
            (false, true) => "the CA side's core was saturated and Gatehouse's was not: the CA limits the rate",
            (true, false) => "Gatehouse's core was saturated and the CA side's was not: Gatehouse limits the rate",
            (true, true) => "both cores were saturated",
            _ => "neither core was saturated: waits (round trips, polling) set the rate",
        };
        return string.Create(CultureInfo.InvariantCulture, $"{phase.Name}: core {cores.Gatehouse} (Gatehouse) {100 * gatehouse:0} % busy, core {cores.Ca} (Pebble, challtestsrv, bench) {100 * ca:0} % busy; {verdict}.");
    }

    private const double SaturatedShare = 0.9;

    private static string Slots(PhaseResult phase, LogIndex index, int slots)
    {
        var spans = phase.Samples.Select(s => index.For(s.Host)).Where(l => l.Issuing is not null && l.Issued is not null).Select(l => (From: l.Issuing!.Value, To: l.Issued!.Value)).ToList();
        if (spans.Count < 2)
        {
            return "";
        }

        var window = (spans.Max(s => s.To) - spans.Min(s => s.From)).TotalSeconds;
        var busy = spans.Sum(s => (s.To - s.From).TotalSeconds);
        var starts = spans.Select(s => s.From).Order().ToList();
        var handovers = spans.Select(s => starts.FirstOrDefault(t => t >= s.To)).Zip(spans, (next, s) => next == default ? double.NaN : (next - s.To).TotalMilliseconds).Where(v => !double.IsNaN(v)).Order().ToList();
        return string.Create(CultureInfo.InvariantCulture,
            $"{phase.Name}: the {slots} issuance slots were busy (\"Issuing\" → \"Issued\") {100 * busy / (slots * window):0}% of the {window:0.00} s from the first \"Issuing\" to the last \"Issued\"; {1000 * busy / spans.Count:0} ms per certificate in a slot; from one \"Issued\" to the next \"Issuing\" p50 {Ms1(Percentile(handovers, 50))} ms, p90 {Ms1(Percentile(handovers, 90))} ms.\n");
    }

    /// <summary>Everything seen while the median certificate of a one-at-a-time phase was issued, in order.</summary>
    private static string Timeline(PhaseResult phase, List<LogEvent> events, WireTimes wire)
    {
        var served = phase.Samples.Where(s => s.Served is not null).OrderBy(s => s.Served!.Value - s.AddStart).ToList();
        var sample = served[(served.Count - 1) / 2];
        var start = sample.AddStart;
        var end = sample.Served!.Value;
        var rows = new List<(DateTimeOffset At, string What)>
        {
            (start, "bench: POST /v1/sites sent"),
            (sample.AddDone, "bench: POST /v1/sites answered (201)"),
            (end - sample.ServedHandshake.GetValueOrDefault(), "bench: the handshake that gets the Pebble certificate starts"),
            (end, "bench: … and ends: served"),
        };
        foreach (var e in events.Where(e => e.Timestamp >= start.AddMilliseconds(-1) && e.Timestamp <= end && (e["CertificateId"] == sample.Host || e["Names"] == sample.Host)))
        {
            rows.Add((e.Timestamp, $"Gatehouse log {e.EventId}: {e.Message}"));
        }

        DateTimeOffset? previous = null;
        foreach (var exchange in wire.Acme.Where(x => x.Sent >= start && x.Sent <= end).OrderBy(x => x.Sent))
        {
            var gap = previous is { } p ? $", {(exchange.Sent - p).TotalMilliseconds:0.0} ms after the previous answer" : "";
            rows.Add((exchange.Sent, $"ACME request → Pebble; answered after {exchange.ServerTime.TotalMilliseconds:0.0} ms{gap}"));
            previous = exchange.LastAnswered;
        }

        foreach (var exchange in wire.Validations.Where(x => x.Sent >= start && x.Sent <= end))
        {
            rows.Add((exchange.Sent, $"Pebble's HTTP-01 request → edge; answered after {exchange.ServerTime.TotalMilliseconds:0.0} ms"));
        }

        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Timeline of the median certificate of the {phase.Name} phase ({sample.Host}, {(end - start).TotalMilliseconds:0} ms; log times have 1 ms resolution). An issuance is newOrder, authorization, challenge, order poll, finalize, order poll, certificate, plus a retry for each badNonce:");
        text.AppendLine();
        text.AppendLine("| ms after POST | what |");
        text.AppendLine("|---:|---|");
        foreach (var (at, what) in rows.OrderBy(r => r.At))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {(at - start).TotalMilliseconds:0.0} | {what.Replace("|", "\\|", StringComparison.Ordinal)} |");
        }

        return text.ToString();
    }

    /// <summary>Every sample with its log-derived parts, one line each.</summary>
    public static string Csv(List<PhaseResult> results, List<LogEvent> events)
    {
        var index = new LogIndex(events);
        var text = new StringBuilder("phase,host,add_start_utc,served_utc,serial,probes,attempts,api_ms,scheduling_ms,acme_ms,finishing_ms,serving_ms,handshake_ms,total_ms\n");
        foreach (var phase in results)
        {
            foreach (var (sample, parts) in phase.Samples.Zip(Parts(phase, index)))
            {
                text.AppendLine(CultureInfo.InvariantCulture,
                    $"{phase.Name},{sample.Host},{sample.AddStart:O},{sample.Served:O},{sample.Serial},{sample.Probes},{index.For(sample.Host).Attempts},{Ms(parts.Api)},{Ms(parts.Scheduling)},{Ms(parts.Acme)},{Ms(parts.Finishing)},{Ms(parts.Serving)},{Ms(parts.Handshake)},{Ms(parts.Total)}");
            }
        }

        return text.ToString();
    }

    private static List<TimeParts> Parts(PhaseResult phase, LogIndex index) =>
        [.. phase.Samples.Select(s =>
        {
            var log = index.For(s.Host);
            return new TimeParts(
                (s.AddDone - s.AddStart).TotalMilliseconds,
                log.Issuing is { } issuing ? (issuing - s.AddDone).TotalMilliseconds : null,
                log.AcmeSeconds * 1000,
                log.AcmeDone is { } done && log.Issued is { } issued ? (issued - done).TotalMilliseconds : null,
                s.Served is { } served && log.Issued is { } issued2 ? (served - issued2).TotalMilliseconds : null,
                s.ServedHandshake?.TotalMilliseconds,
                s.Served is { } served2 ? (served2 - s.AddStart).TotalMilliseconds : null);
        })];

    /// <summary>Nearest rank.</summary>
    private static double Percentile(List<double> sorted, double p) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Count) - 1, 0, sorted.Count - 1)];

    private static string S(double seconds) => double.IsNaN(seconds) ? "–" : seconds.ToString("0.000", CultureInfo.InvariantCulture) + " s";

    private static string Ms1(double ms) => double.IsNaN(ms) ? "–" : ms.ToString("0.0", CultureInfo.InvariantCulture);

    private static string Ms(double? ms) => ms is { } v && !double.IsNaN(v) ? v.ToString("0", CultureInfo.InvariantCulture) : "–";

    private sealed record TimeParts(double Api, double? Scheduling, double? Acme, double? Finishing, double? Serving, double? Handshake, double? Total);

    /// <summary>What the log says about one certificate (its id is the site's first host, and it has one name).</summary>
    internal sealed record CertificateLog(DateTimeOffset? Issuing, DateTimeOffset? AcmeDone, double? AcmeSeconds, DateTimeOffset? Issued, int Attempts, int Failures);

    private sealed class LogIndex
    {
        private readonly Dictionary<string, CertificateLog> _byHost = new(StringComparer.Ordinal);

        public LogIndex(List<LogEvent> events)
        {
            foreach (var e in events)
            {
                var host = e.EventId == AcmeOrderDoneEvent ? e["Names"] : e["CertificateId"];
                if (host is null || e.EventId is not (IssuingEvent or AcmeOrderDoneEvent or GatehouseProcess.IssuedEvent or FailedEvent))
                {
                    continue;
                }

                var log = _byHost.GetValueOrDefault(host) ?? new CertificateLog(null, null, null, null, 0, 0);
                _byHost[host] = e.EventId switch
                {
                    IssuingEvent => log with { Issuing = log.Issuing ?? e.Timestamp, Attempts = log.Attempts + 1 },
                    AcmeOrderDoneEvent => log with { AcmeDone = e.Timestamp, AcmeSeconds = double.Parse(e["Seconds"]!, CultureInfo.InvariantCulture) },
                    FailedEvent => log with { Failures = log.Failures + 1 },
                    _ => log with { Issued = e.Timestamp },
                };
            }
        }

        public CertificateLog For(string host) => _byHost.GetValueOrDefault(host) ?? new CertificateLog(null, null, null, null, 0, 0);
    }
}
