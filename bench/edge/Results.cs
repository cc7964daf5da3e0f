using System.Globalization;
using System.Text;

/// <summary>A column of a report table: a metric measured per line (terminator or variant) in each repetition.</summary>
internal sealed record Metric(string Key, string Header, string Format, bool HigherIsBetter = true);

/// <summary>What a table compares against: Gatehouse's primary metric over the reference line's (nginx, or HAProxy
/// for passthrough) must be at least <see cref="MinRatio"/> (higher-is-better metrics), at most <see cref="MaxRatio"/>
/// (lower-is-better), and better than Caddy's when <see cref="AheadOfCaddy"/>.</summary>
internal sealed record Target(string Text, double? MinRatio = null, double? MaxRatio = null, bool AheadOfCaddy = true, string Reference = "nginx");

/// <summary>One report table (one row of the issue's list).</summary>
internal sealed record Table(string Id, string Title, Metric[] Metrics, Metric Primary, Target? Target, string Notes = "");

/// <summary>Every sample, by table, metric and line, in the order measured; plus free-form notes and the run log.</summary>
internal sealed class Results
{
    private readonly Dictionary<(string Table, string Metric, string Line), List<double>> _samples = [];
    private readonly List<string> _lineOrder = [];

    public List<string> Runs { get; } = [];

    public List<string> Notes { get; } = [];

    public void Add(string table, string metric, string line, double value)
    {
        if (!_samples.TryGetValue((table, metric, line), out var list))
        {
            _samples[(table, metric, line)] = list = [];
        }

        list.Add(value);
        if (!_lineOrder.Contains(line))
        {
            _lineOrder.Add(line);
        }
    }

    public IReadOnlyList<double> Get(string table, string metric, string line) => _samples.GetValueOrDefault((table, metric, line)) ?? [];

    public static double Median(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? double.NaN : sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    public string Render(Table table)
    {
        var lines = _lineOrder.Where(l => table.Metrics.Any(m => Get(table.Id, m.Key, l).Count > 0)).ToList();
        if (lines.Count == 0)
        {
            return "";
        }

        // columns nobody has a figure for (e.g. BIG_CERTS=0) are left out
        table = table with { Metrics = [.. table.Metrics.Where(m => lines.Any(l => Get(table.Id, m.Key, l).Count > 0))] };
        var reference = table.Target?.Reference ?? "nginx";
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"### {table.Title}");
        text.AppendLine();
        var refLine = lines.FirstOrDefault(l => l == reference || l.StartsWith(reference + " ", StringComparison.Ordinal));
        text.Append("| terminator |");
        foreach (var metric in table.Metrics)
        {
            text.Append(CultureInfo.InvariantCulture, $" {metric.Header} |");
        }

        text.AppendLine(CultureInfo.InvariantCulture, $" {table.Primary.Header}: ratio to {reference} | target |");
        text.Append("|---|");
        text.Append(string.Concat(Enumerable.Repeat("---:|", table.Metrics.Length)));
        text.AppendLine("---:|---|");
        foreach (var line in lines)
        {
            text.Append(CultureInfo.InvariantCulture, $"| {line} |");
            foreach (var metric in table.Metrics)
            {
                text.Append(CultureInfo.InvariantCulture, $" {Cell(Get(table.Id, metric.Key, line), metric.Format)} |");
            }

            var ratio = Ratio(table, line, refLine);
            text.Append(CultureInfo.InvariantCulture, $" {RatioText(ratio, table.Primary.HigherIsBetter)} |");
            text.AppendLine(CultureInfo.InvariantCulture, $" {(line.StartsWith("gatehouse", StringComparison.Ordinal) ? Verdict(table, line, refLine, lines) : "")} |");
        }

        text.AppendLine();
        if (table.Notes.Length > 0)
        {
            text.AppendLine(table.Notes);
            text.AppendLine();
        }

        return text.ToString();
    }

    /// <summary>"0.45×"; small ratios with three decimals, and for lower-is-better metrics (times, memory) also the
    /// factor the other way round, e.g. "0.030× (1/33)".</summary>
    private static string RatioText(double ratio, bool higherIsBetter)
    {
        if (double.IsNaN(ratio))
        {
            return "—";
        }

        var text = ratio.ToString(ratio < 0.1 ? "0.000" : "0.00", CultureInfo.InvariantCulture) + "×";
        return !higherIsBetter && ratio > 0 && ratio < 0.5 ? text + $" (1/{(1 / ratio).ToString("0", CultureInfo.InvariantCulture)})" : text;
    }

    private double Ratio(Table table, string line, string? refLine)
    {
        if (refLine is null)
        {
            return double.NaN;
        }

        var mine = Median(Get(table.Id, table.Primary.Key, line));
        var theirs = Median(Get(table.Id, table.Primary.Key, refLine));
        return theirs > 0 ? mine / theirs : double.NaN;
    }

    private string Verdict(Table table, string line, string? refLine, List<string> lines)
    {
        if (table.Target is not { } target)
        {
            return "";
        }

        var parts = new List<string>();
        var ratio = Ratio(table, line, refLine);
        if (target.MinRatio is { } min || target.MaxRatio is not null)
        {
            var met = double.IsNaN(ratio) ? (bool?)null : target.MinRatio is { } lo ? ratio >= lo : ratio <= target.MaxRatio!.Value;
            parts.Add($"{target.Text}: {(met is null ? $"no {target.Reference} figure" : met.Value ? "**met**" : "**not met**")}");
        }

        if (target.AheadOfCaddy)
        {
            var caddy = lines.FirstOrDefault(l => l.StartsWith("caddy", StringComparison.Ordinal));
            if (caddy is null)
            {
                parts.Add("ahead of Caddy: no Caddy figure");
            }
            else
            {
                var mine = Median(Get(table.Id, table.Primary.Key, line));
                var theirs = Median(Get(table.Id, table.Primary.Key, caddy));
                var ahead = table.Primary.HigherIsBetter ? mine > theirs : mine < theirs;
                parts.Add($"ahead of Caddy: {(double.IsNaN(mine) || double.IsNaN(theirs) ? "no figure" : ahead ? "**met**" : "**not met**")}");
            }
        }

        return string.Join("; ", parts);
    }

    private static string Cell(IReadOnlyList<double> values, string format)
    {
        if (values.Count == 0)
        {
            return "—";
        }

        var median = Median(values).ToString(format, CultureInfo.InvariantCulture);
        return values.Count == 1 ? median : $"{median} ({values.Min().ToString(format, CultureInfo.InvariantCulture)}–{values.Max().ToString(format, CultureInfo.InvariantCulture)})";
    }
}
