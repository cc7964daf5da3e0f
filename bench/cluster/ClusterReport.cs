using System.Globalization;
using System.Text;

/// <summary>The markdown report and the per-sample CSV. Percentiles are nearest rank over every sample, a miss
/// counting as longer than any time (so a p99 that lands on a miss shows "miss").</summary>
internal sealed class ClusterReport(int instances, int sites, TimeSpan limit, TimeSpan pollInterval, List<List<LogEvent>> logs)
{
    private const int ElectedEvent = 1011;
    private const int IssuingEvent = 3001;

    public string Markdown(List<UpdateSample> updates, List<ReloadSample> reloads, List<UpdateSample> warmupUpdates, List<ReloadSample> warmupReloads, CpuReading cpu, (DateTimeOffset Start, DateTimeOffset End) measured, double setupSeconds)
    {
        var measureSeconds = (measured.End - measured.Start).TotalSeconds;
        var text = new StringBuilder();
        var pairs = updates.SelectMany(u => u.Served).ToList();
        var gatehouse = Times(pairs);
        var reloadCommand = reloads.Where(r => !r.SignalOnly).ToList();
        var hup = reloads.Where(r => r.SignalOnly).ToList();
        var peer = Times(reloadCommand.Select(r => r.Served));
        var peerHup = Times(hup.Select(r => r.Served));
        text.AppendLine(CultureInfo.InvariantCulture, $"Reload: a new certificate is available (Gatehouse: its record lands in etcd, t0 of the bench's watch; nginx: `nginx -s reload` started) → the end of the first full TLS handshake presenting it (t_i), ms. Probes: a fresh connection and handshake (SNI = the name, no session resumption) every {pollInterval.TotalMilliseconds:0} ms from t0, on every instance at once, at most {limit.TotalSeconds:0} s (then a miss).");
        text.AppendLine();
        text.AppendLine("| where | samples | p50 | p90 | p99 | max | misses | new on the first probe | probes, p50 | the presenting handshake, p50 | the next handshake, p50 |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (var i = 0; i < instances; i++)
        {
            var asked = updates.Count(u => u.Asked == i + 1);
            Row(text, $"Gatehouse instance {i + 1} (asked for {asked} of the renewals)", [.. updates.Select(u => u.Served[i])]);
        }

        Row(text, $"**Gatehouse, all {instances} × {updates.Count} (instance, update) pairs**", pairs);
        Row(text, $"**nginx, `nginx -s reload`, {sites} server blocks**", [.. reloadCommand.Select(r => r.Served)]);
        Row(text, "nginx, `kill -HUP` to the master instead", [.. hup.Select(r => r.Served)]);
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"- Gatehouse p50 / nginx p50 = {Ms(P(gatehouse, 50))} / {Ms(P(peer, 50))} = **{Ratio(P(gatehouse, 50), P(peer, 50))}**; p99 / p99 = {Ms(P(gatehouse, 99))} / {Ms(P(peer, 99))} = {Ratio(P(gatehouse, 99), P(peer, 99))}. Against `kill -HUP`: p50 / p50 = {Ratio(P(gatehouse, 50), P(peerHup, 50))}, p99 / p99 = {Ratio(P(gatehouse, 99), P(peerHup, 99))}.");
        text.AppendLine(CultureInfo.InvariantCulture, $"- Target p99 < 500 ms over all pairs: **{(P(gatehouse, 99) < 500 ? "met" : "not met")}** ({Ms(P(gatehouse, 99))} ms).");
        text.AppendLine(CultureInfo.InvariantCulture, $"- Gatehouse's t0 is when the bench's own watch (Gatehouse.Core's EtcdStore) received the record; etcd's watch delivers about 1 ms after the write is applied, so t_i − t0 leaves out that ~1 ms on the instances' side. Each t_i includes the presenting handshake (its own column) and, when the first probe still got the old certificate, up to one poll interval plus one handshake of probing resolution.");
        text.AppendLine("- \"New on the first probe\": the first handshake after t0 already presented the new certificate, so that instance had swapped its table before the probe's ClientHello arrived and t_i − t0 is that handshake's length. \"The next handshake\" is one more probe right after the presenting one (the certificate now prepared); Gatehouse prepares a certificate's TLS context (chain parsed, key unsealed) on its first handshake, so presenting − next ≈ that preparation (nginx loads certificates at reload, before its new worker accepts).");
        var commands = Sorted(reloadCommand.Select(r => r.CommandMs));
        text.AppendLine(CultureInfo.InvariantCulture, $"- `nginx -s reload` itself ran {Ms(P(commands, 50))} ms (p50), {Ms(P(commands, 99))} ms (p99) before exiting: it reads the whole config, every certificate included, to find the pid file, then sends SIGHUP; the master then reads it all again and starts a new worker. `kill -HUP` ran {Ms(P(Sorted(hup.Select(r => r.CommandMs)), 50))} ms (p50). Exit codes other than 0: {reloads.Count(r => r.ExitCode != 0)}; reloads after which the old worker was still there 3 s later: {reloads.Count(r => !r.Settled)}.");
        text.AppendLine();

        IssuanceSection(text, updates);
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Warm-up (before the measured loop, not in the tables above): {warmupUpdates.Count} updates, all pairs p50 {Ms(P(Times(warmupUpdates.SelectMany(u => u.Served)), 50))} / max {Ms(Times(warmupUpdates.SelectMany(u => u.Served)).LastOrDefault(double.NaN))} ms, misses {warmupUpdates.SelectMany(u => u.Served).Count(s => s.Ms is null)}; {warmupReloads.Count} nginx reloads, p50 {Ms(P(Times(warmupReloads.Select(r => r.Served)), 50))} / max {Ms(Times(warmupReloads.Select(r => r.Served)).LastOrDefault(double.NaN))} ms.");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"CPU during the measured loop ({measureSeconds:0.0} s; set-up before it took {setupSeconds:0.0} s), seconds (cores):");
        text.AppendLine();
        text.AppendLine("| " + string.Join(" | ", Enumerable.Range(1, instances).Select(i => $"Gatehouse {i}")) + " | etcd, 3 members | bench (probes, watch, nginx certificates) |");
        text.AppendLine("|" + string.Concat(Enumerable.Repeat("---:|", instances + 2)));
        text.AppendLine("| " + string.Join(" | ", cpu.Instances.Select(c => Cpu(c, measureSeconds))) + $" | {Cpu(cpu.Etcd, measureSeconds)} | {Cpu(cpu.Bench, measureSeconds)} |");
        text.AppendLine();
        text.AppendLine("Warnings and errors in the instances' logs, during the measured loop and outside it (start-up, set-up and warm-up; the shutdown is not read):");
        text.AppendLine();
        for (var i = 0; i < instances; i++)
        {
            var bad = logs[i].Where(e => e.Level is "Warning" or "Error" or "Critical").ToList();
            var during = bad.Where(e => e.Timestamp >= measured.Start && e.Timestamp <= measured.End).ToList();
            text.AppendLine(CultureInfo.InvariantCulture, $"- instance {i + 1}: during: {Kinds(during)}; outside: {Kinds(bad.Except(during).ToList())}");
        }

        return text.ToString();
    }

    public string Csv(List<UpdateSample> updates, List<ReloadSample> reloads)
    {
        var text = new StringBuilder("kind,index,warmup,host,asked,instance,issued_by,old_serial,new_serial,post_ms,record_ms,served_ms,probes,handshake_ms,next_handshake_ms,command_ms\n");
        foreach (var update in updates)
        {
            var issuer = update.NewSerial is null ? null : IssuerOf(update.NewSerial);
            for (var i = 0; i < update.Served.Length; i++)
            {
                var served = update.Served[i];
                text.AppendLine(CultureInfo.InvariantCulture, $"gatehouse,{update.Index},{update.Warmup},{update.Host},{update.Asked},{i + 1},{issuer?.Instance},{update.OldSerial},{update.NewSerial},{update.PostMs:0.0},{update.RecordMs:0.0},{served.Ms:0.0},{served.Probes},{served.HandshakeMs:0.0},{served.NextHandshakeMs:0.0},");
            }
        }

        foreach (var reload in reloads)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"{(reload.SignalOnly ? "nginx-hup" : "nginx")},{reload.Index},{reload.Warmup},{reload.Host},,,,,{reload.Serial},,,{reload.Served.Ms:0.0},{reload.Served.Probes},{reload.Served.HandshakeMs:0.0},{reload.Served.NextHandshakeMs:0.0},{reload.CommandMs:0.0}");
        }

        return text.ToString();
    }

    private void IssuanceSection(StringBuilder text, List<UpdateSample> updates)
    {
        var parts = new List<(double Post, double? ToIssuing, double? Issuing, double? ToRecord, double? Total)>();
        var issuedBy = new int[instances + 1]; // [0]: in no instance's log
        foreach (var update in updates)
        {
            var issuer = update.NewSerial is null ? null : IssuerOf(update.NewSerial);
            issuedBy[issuer?.Instance ?? 0]++;
            var issuing = issuer is null
                ? null
                : logs[issuer.Value.Instance - 1].FirstOrDefault(e => e.EventId == IssuingEvent && e["Names"] == update.Host && e.Timestamp >= update.AskUtc.AddMilliseconds(-1) && e.Timestamp <= issuer.Value.Issued.Timestamp);
            var issued = issuer?.Issued.Timestamp;
            parts.Add((
                update.PostMs,
                issuing is null ? null : Span(update.AskUtc, issuing.Timestamp),
                issuing is null || issued is null ? null : Span(issuing.Timestamp, issued.Value),
                issued is null || update.RecordUtc is null ? null : Span(issued.Value, update.RecordUtc.Value),
                update.RecordMs));
        }

        text.AppendLine(CultureInfo.InvariantCulture, $"Issuance, not reload: renewal asked (POST /v1/certificates/HOST/renew) → the record with the new serial in etcd, ms over the {updates.Count} measured updates (the middle rows from the issuing instance's log, 1 ms resolution):");
        text.AppendLine();
        text.AppendLine("| step | p50 | p90 | p99 | max |");
        text.AppendLine("|---|---:|---:|---:|---:|");
        PartRow(text, "POST …/renew answered (the asked instance wrote RenewAfter = now)", parts.Select(p => (double?)p.Post));
        PartRow(text, "asked → \"Issuing\" (3001: the issuing instance's mirror saw the due record, took the certificate's lock, read the record)", parts.Select(p => p.ToIssuing));
        PartRow(text, "\"Issuing\" → \"Issued\" (3002: new key, local CA signs, key sealed)", parts.Select(p => p.Issuing));
        PartRow(text, "\"Issued\" → record seen by the bench's watch (commit to etcd + watch delivery)", parts.Select(p => p.ToRecord));
        PartRow(text, "**asked → record seen (t0)**", parts.Select(p => p.Total));
        text.AppendLine();
        var asked = Enumerable.Range(1, instances).Select(i => $"instance {i}: {updates.Count(u => u.Asked == i)}");
        var by = Enumerable.Range(1, instances).Select(i => $"instance {i}: {issuedBy[i]}");
        text.AppendLine(CultureInfo.InvariantCulture, $"- Renewals asked through: {string.Join(", ", asked)}. New certificates issued by (\"Issued\" event 3002 with the new serial in that instance's log): {string.Join(", ", by)}{(issuedBy[0] > 0 ? $", in no log: {issuedBy[0]}" : "")}.");
        var elections = Enumerable.Range(0, instances)
            .SelectMany(i => logs[i].Where(e => e.EventId == ElectedEvent).Select(e => $"instance {i + 1} at {e.Timestamp:HH:mm:ss.fff} ({e["Key"]})"))
            .ToList();
        text.AppendLine(CultureInfo.InvariantCulture, $"- Elections won (event 1011): {(elections.Count == 0 ? "none logged: no instance campaigned, so a certificate due by time is renewed by whichever instance takes its lock first" : string.Join("; ", elections))}.");
    }

    private (int Instance, LogEvent Issued)? IssuerOf(string serial)
    {
        for (var i = 0; i < logs.Count; i++)
        {
            if (logs[i].FirstOrDefault(e => e.EventId == GatehouseProcess.IssuedEvent && string.Equals(e["Serial"], serial, StringComparison.OrdinalIgnoreCase)) is { } issued)
            {
                return (i + 1, issued);
            }
        }

        return null;
    }

    private static void Row(StringBuilder text, string label, List<Served> samples)
    {
        var times = Times(samples);
        var probes = Sorted(samples.Select(s => (double)s.Probes));
        var handshakes = Sorted(samples.Where(s => s.Ms is not null).Select(s => s.HandshakeMs));
        var next = Sorted(samples.Select(s => s.NextHandshakeMs ?? double.NaN).Where(v => !double.IsNaN(v)));
        text.AppendLine(CultureInfo.InvariantCulture, $"| {label} | {samples.Count} | {Ms(P(times, 50))} | {Ms(P(times, 90))} | {Ms(P(times, 99))} | {Ms(times.LastOrDefault(double.NaN))} | {samples.Count(s => s.Ms is null)} | {samples.Count(s => s.Ms is not null && s.Probes == 1)} | {P(probes, 50):0} | {Ms(P(handshakes, 50))} | {Ms(P(next, 50))} |");
    }

    private static void PartRow(StringBuilder text, string label, IEnumerable<double?> values)
    {
        var sorted = Sorted(values.Select(v => v ?? double.NaN).Where(v => !double.IsNaN(v)));
        text.AppendLine(CultureInfo.InvariantCulture, $"| {label} | {Ms(P(sorted, 50))} | {Ms(P(sorted, 90))} | {Ms(P(sorted, 99))} | {Ms(sorted.LastOrDefault(double.NaN))} |");
    }

    private static List<double> Times(IEnumerable<Served> samples) => Sorted(samples.Select(s => s.Ms ?? double.PositiveInfinity));

    private static List<double> Sorted(IEnumerable<double> values)
    {
        var list = values.ToList();
        list.Sort();
        return list;
    }

    private static double P(List<double> sorted, double p) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Count) - 1, 0, sorted.Count - 1)];

    private static double Span(DateTimeOffset from, DateTimeOffset to) => (to - from).TotalMilliseconds;

    private static string Ms(double ms) => double.IsNaN(ms) ? "–" : double.IsPositiveInfinity(ms) ? "miss" : ms.ToString("0.0", CultureInfo.InvariantCulture);

    private static string Ratio(double a, double b) => double.IsFinite(a) && double.IsFinite(b) && b > 0 ? (a / b).ToString("0.00", CultureInfo.InvariantCulture) : "–";

    private static string Cpu(double seconds, double wall) => string.Create(CultureInfo.InvariantCulture, $"{seconds:0.00} s ({seconds / wall:0.00})");

    private static string Kinds(List<LogEvent> events) => events.Count == 0
        ? "none"
        : string.Join("; ", events.GroupBy(e => (e.EventId, e.Category)).Select(g => $"{g.Count()} × event {g.Key.EventId} of {g.Key.Category} \"{Shorten(g.First().Message)}\""));

    private static string Shorten(string message) => message.Length > 120 ? message[..120] + "…" : message;
}
