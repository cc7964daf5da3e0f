#!/usr/bin/env python3
"""Markdown report for bench/tls/run (standard library only).

Usage: report.py WORKDIR           print the report
       report.py --check WORKDIR   exit 1 if any run is invalid (resumed or non-TLS-1.3 handshakes,
                                   errors above 1 %, non-200 answers, a terminator that failed)

WORKDIR holds results.jsonl (one JSON object per terminator and repetition), meta.json,
verify.json and tlsparams-<terminator>.json, all written by bench/tls/run.
"""
import json
import os
import statistics
import sys

NAMES = {"nginx": "nginx", "gatehouse": "Gatehouse"}


def load(work):
    runs = []
    with open(os.path.join(work, "results.jsonl")) as f:
        for line in f:
            line = line.strip()
            if line:
                runs.append(json.loads(line))

    def opt(name):
        p = os.path.join(work, name)
        if os.path.exists(p) and os.path.getsize(p) > 0:
            with open(p) as f:
                return json.load(f)
        return None

    meta = opt("meta.json") or {}
    verify = opt("verify.json")
    tls = {t: opt("tlsparams-%s.json" % t) for t in ("nginx", "gatehouse")}
    return runs, meta, verify, tls


def per_cpu(n, cpu_s):
    return n / cpu_s if cpu_s > 0 else float("nan")


def slice_rate(slices):
    """Work per CPU-second of the given warm-up slices (NaN if none)."""
    n = sum(x["n"] for x in slices)
    cpu = sum(x["cpu_s"] for x in slices)
    return n / cpu if cpu > 0 else float("nan")


def metrics(r):
    """Derived numbers of one run."""
    ka, hs, mem = r["ka"], r["hs"], r["mem"]
    return {
        "ka_rps": ka["requests"] / ka["seconds"] if ka["seconds"] else 0.0,
        "ka_per_cpu": per_cpu(ka["requests"], ka["cpu_s"]),
        "ka_util": ka["cpu_s"] / ka["wall_s"] if ka["wall_s"] else 0.0,
        "hs_rps": hs.get("conns", 0) / hs["elapsed"] if hs.get("elapsed") else 0.0,
        "hs_per_cpu": per_cpu(hs.get("conns", 0), hs["cpu_s"]),
        "hs_util": hs["cpu_s"] / hs["wall_s"] if hs["wall_s"] else 0.0,
        "ka_cold_per_cpu": slice_rate(ka.get("warmup", [])[:1]),
        "ka_warm_s": sum(x["wall_s"] for x in ka.get("warmup", [])),
        "hs_warm_s": sum(x["wall_s"] for x in hs.get("warmup", [])),
        "rss_idle": mem["idle_rss_kb"] / 1024.0,
        "rss_after": mem["after_rss_kb"] / 1024.0,
        "pss_idle": mem["idle_pss_kb"] / 1024.0,
        "pss_after": mem["after_pss_kb"] / 1024.0,
    }


ROWS = [
    # key, label, decimals, better
    ("ka_rps", "keep-alive HTTPS requests/s", 0, "higher"),
    ("ka_per_cpu", "keep-alive requests per proxy CPU-second", 0, "higher"),
    ("ka_util", "proxy CPU used during keep-alive run (cores)", 2, "-"),
    ("hs_rps", "full TLS 1.3 handshakes/s", 0, "higher"),
    ("hs_per_cpu", "full TLS 1.3 handshakes per proxy CPU-second", 0, "higher"),
    ("hs_util", "proxy CPU used during handshake run (cores)", 2, "-"),
    ("ka_cold_per_cpu", "keep-alive requests per proxy CPU-second in the first warm-up slice (cold start)", 0, "higher"),
    ("ka_warm_s", "warm-up before the keep-alive run (s)", 0, "-"),
    ("hs_warm_s", "warm-up before the handshake run (s)", 0, "-"),
    ("rss_idle", "RSS idle after start (MiB, VmRSS summed)", 1, "lower"),
    ("rss_after", "RSS after load (MiB, VmRSS summed)", 1, "lower"),
    ("pss_idle", "PSS idle after start (MiB)", 1, "lower"),
    ("pss_after", "PSS after load (MiB)", 1, "lower"),
]


def fmt(x, dec):
    if x != x:  # NaN
        return "n/a"
    return "{:,.{d}f}".format(x, d=dec)


def cell(vals, dec):
    if not vals:
        return "—"
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt(med, dec)
    return "%s (%s–%s)" % (fmt(med, dec), fmt(min(vals), dec), fmt(max(vals), dec))


def problems(r):
    """Reasons a run is invalid, and warnings."""
    bad, warn = [], []
    if "failed" in r:
        return ["did not run: " + r["failed"]], []
    ka, hs = r["ka"], r["hs"]
    if hs.get("reused", 0):
        bad.append("%d resumed handshakes" % hs["reused"])
    if hs.get("not_tls13", 0):
        bad.append("%d handshakes not TLS 1.3" % hs["not_tls13"])
    if hs.get("conns", 0) == 0:
        bad.append("no handshakes (%s)" % hs.get("first_error", ""))
    if ka["requests"] == 0:
        bad.append("no keep-alive requests")
    if ka["non2xx"] or hs.get("non200", 0):
        bad.append("non-200 answers: keep-alive %d, handshake run %d" % (ka["non2xx"], hs.get("non200", 0)))
    total_hs = hs.get("conns", 0) + hs.get("errors", 0)
    if hs.get("errors", 0):
        msg = "handshake run: %d connection errors (first: %s)" % (hs["errors"], hs.get("first_error", ""))
        (bad if hs["errors"] > 0.01 * max(total_hs, 1) else warn).append(msg)
    for key, label, unit in (("ka", "keep-alive", "requests"), ("hs", "handshake", "conns")):
        ws = r[key].get("warmup", [])
        if ws:
            last = slice_rate(ws[-1:])
            cpu = r[key]["cpu_s"]
            measured = (r[key]["requests"] if key == "ka" else r[key].get("conns", 0)) / cpu if cpu > 0 else float("nan")
            if last == last and measured == measured and last > 0 and abs(measured - last) > 0.10 * last:
                warn.append("%s run: %.0f per CPU-s measured vs %.0f in the last warm-up slice: maybe not steady" % (
                    label, measured, last))
    if ka["socket_errors"]:
        msg = "keep-alive run: %d wrk socket errors" % ka["socket_errors"]
        (bad if ka["socket_errors"] > 0.01 * max(ka["requests"], 1) else warn).append(msg)
    return bad, warn


def report(work):
    runs, meta, verify, tls = load(work)
    terms = meta.get("terminators") or sorted({r["terminator"] for r in runs})
    good = {t: [] for t in terms}
    failed = {t: [] for t in terms}
    for r in runs:
        bad, _ = problems(r)
        (failed if bad else good)[r["terminator"]].append(r)
    derived = {t: [metrics(r) for r in good[t]] for t in terms}

    out = []
    w = out.append
    w("# TLS terminators: Gatehouse vs nginx — %s" % meta.get("date", "?"))
    w("")
    w("- Machine: %s, %s cores, Linux %s; load average %s." % (
        meta.get("host_cpu", "?"), meta.get("ncpu", "?"), meta.get("kernel", "?"), meta.get("loadavg_start", "?")))
    w("- Software: nginx %s (Debian), %s, wrk %s, hsload built with %s, .NET SDK %s." % (
        meta.get("nginx", "?"), meta.get("openssl", "?"), meta.get("wrk", "?"), meta.get("go", "?"), meta.get("dotnet", "?")))
    if "gatehouse" in terms:
        src = meta.get("gatehouse_dll") or ("commit " + meta["gatehouse_commit"] if meta.get("gatehouse_commit") else "source tree")
        w("- Gatehouse: %s; Release publish, `dotnet gatehouse.dll serve`, DOTNET_gcServer=0, DOTNET_TieredPGO=1." % src)
    w("- Pinning: terminator on core %s (alone); backend (nginx, `return 200 \"ok\\n\"`), wrk, hsload and the harness on core %s." % (
        meta.get("proxy_cpu", "?"), meta.get("load_cpu", "?")))
    w("- Runs: %s interleaved repetitions per terminator (%s, %s, ...), each a fresh start. Per repetition: "
      "warm-up, then a %ss keep-alive run (wrk, 1 thread, %s connections, HTTP/1.1); warm-up, then a %ss "
      "full-handshake run (hsload, %s connections in flight, one `GET /` with `Connection: close` per connection). "
      "Warm-up = %ss slices of the same load until at least %ss (keep-alive) / %ss (handshakes) have passed and two "
      "slices in a row agree within %s %% on work per proxy CPU-second, at most twice the minimum." % (
          meta.get("reps", "?"), ", ".join(NAMES.get(t, t) for t in terms), ", ".join(NAMES.get(t, t) for t in terms[:1]),
          meta.get("duration", "?"), meta.get("ka_conns", "?"), meta.get("duration", "?"), meta.get("hs_conns", "?"),
          meta.get("warm_slice", "?"), meta.get("warmup", "?"), meta.get("hs_warmup", "?"), meta.get("warm_tol", "?")))
    w("- CPU = utime+stime of all the terminator's processes (/proc/PID/stat, nginx master + worker) across the measured run; "
      "memory = VmRSS (and PSS) summed over those processes, idle 2 s after it first answered 200 and 1 s after the load.")
    if "gatehouse" in terms and "nginx" in terms:
        fps = [(tls.get(t) or {}).get("leaf_sha256") for t in ("nginx", "gatehouse")]
        if fps[0] and fps[0] == fps[1]:
            w("- Certificates: **the identical certificate** (same leaf SHA-256 fingerprint from both): an openssl-made "
              "ECDSA P-256 leaf (SAN localhost) with its P-256 intermediate, root P-256.")
        else:
            w("- Certificates: **same key type and chain depth, not the identical certificate.** nginx serves an openssl-made "
              "ECDSA P-256 leaf (SAN localhost) with its P-256 intermediate (root P-256, not sent); Gatehouse serves the leaf "
              "its built-in local CA issued (ECDSA P-256, root+intermediate chain), because it cannot import one yet. "
              "See the TLS table below.")
    w("")
    nreps = {t: len(good[t]) for t in terms}
    w("## Results (median (min–max) over valid repetitions: %s)" % ", ".join("%s %d" % (NAMES.get(t, t), nreps[t]) for t in terms))
    w("")
    head = "| metric | " + " | ".join(NAMES.get(t, t) for t in terms)
    sep = "|---|" + "---:|" * len(terms)
    both = "nginx" in terms and "gatehouse" in terms
    if both:
        head += " | Gatehouse/nginx | better"
        sep += "---:|:---:|"
    w(head + " |")
    w(sep)
    for key, label, dec, better in ROWS:
        line = "| %s | " % label + " | ".join(cell([d[key] for d in derived[t]], dec) for t in terms)
        if both:
            g = [d[key] for d in derived["gatehouse"]]
            n = [d[key] for d in derived["nginx"]]
            ratio = "—"
            if g and n and statistics.median(n) > 0:
                ratio = "%.2f" % (statistics.median(g) / statistics.median(n))
            line += " | %s | %s" % (ratio, better)
        w(line + " |")
    w("")
    if both:
        w("Gatehouse/nginx is the ratio of the medians. For throughput rows above 1 means Gatehouse does more work "
          "per second or per CPU-second; for memory rows above 1 means Gatehouse uses more memory. \"cores\" rows show how "
          "busy the terminator's core was (1.00 = saturated); the per-CPU-second rows are the comparable ones.")
        w("")

    w("## TLS as a client sees it (`openssl s_client -tls1_3 -showcerts`)")
    w("")
    w("| | " + " | ".join(NAMES.get(t, t) for t in terms) + " |")
    w("|---|" + "---|" * len(terms))
    for key, label in (("protocol", "protocol"), ("cipher", "cipher (s_client)"), ("temp_key", "key exchange"),
                       ("peer_sig", "server signature"), ("verify", "chain verifies against its root"),
                       ("chain_certs_sent", "certificates sent"), ("chain_der_bytes", "certificate bytes sent (DER)"),
                       ("chain", "chain sent"), ("leaf_sha256", "leaf SHA-256")):
        w("| %s | %s |" % (label, " | ".join(str((tls.get(t) or {}).get(key, "?")) for t in terms)))
    ciphers = {}
    for r in runs:
        if "hs" in r and r["hs"].get("cipher"):
            ciphers.setdefault(r["terminator"], set()).add(r["hs"]["cipher"])
    w("| cipher (hsload) | %s |" % " | ".join(", ".join(sorted(ciphers.get(t, []))) or "?" for t in terms))
    w("")

    w("## Checks")
    w("")
    if verify:
        v = verify["hsload"]
        w("- Load tools, checked against an nginx that logs `$ssl_protocol $ssl_session_reused` (session tickets on, so a "
          "client that offered a ticket would be resumed): %d of %d hsload connections were full TLS 1.3 handshakes "
          "(`$ssl_session_reused` = `.`), one request each; hsload itself counted %d connections, %d resumed, %d not TLS 1.3. "
          "wrk used TLS 1.3 for %d of %d requests." % (
              verify["server_hs_full_tls13"], verify["server_hs_lines"], v.get("conns", 0), v.get("reused", 0),
              v.get("not_tls13", 0), verify["server_ka_tls13"], verify["server_ka_lines"]))
    tot = {}
    for r in runs:
        if "hs" not in r:
            continue
        t = tot.setdefault(r["terminator"], {"conns": 0, "reused": 0, "not_tls13": 0, "non200": 0, "errors": 0,
                                             "ka_requests": 0, "ka_non2xx": 0, "ka_socket_errors": 0})
        for k in ("conns", "reused", "not_tls13", "non200", "errors"):
            t[k] += r["hs"].get(k, 0)
        t["ka_requests"] += r["ka"]["requests"]
        t["ka_non2xx"] += r["ka"]["non2xx"]
        t["ka_socket_errors"] += r["ka"]["socket_errors"]
    for name in terms:
        if name in tot:
            t = tot[name]
            w("- %s, all measured runs: %d handshakes, %d resumed, %d not TLS 1.3, %d non-200, %d connection errors; "
              "%d keep-alive requests, %d non-2xx, %d wrk socket errors." % (
                  NAMES.get(name, name), t["conns"], t["reused"], t["not_tls13"], t["non200"], t["errors"],
                  t["ka_requests"], t["ka_non2xx"], t["ka_socket_errors"]))
    tails = []
    for r in runs:
        bad, warn = problems(r)
        for b in bad:
            w("- **INVALID** %s rep %d: %s" % (NAMES.get(r["terminator"], r["terminator"]), r["rep"], b))
        for x in warn:
            w("- warning: %s rep %d: %s" % (NAMES.get(r["terminator"], r["terminator"]), r["rep"], x))
        if r.get("log_tail"):
            tails.append(r)
    w("")
    for r in tails[:1]:
        w("Last lines of %s's output (rep %d):" % (NAMES.get(r["terminator"], r["terminator"]), r["rep"]))
        w("")
        w("```")
        w(r["log_tail"].rstrip()[-4000:])
        w("```")
        w("")

    w("## Runs, in the order they ran")
    w("")
    w("| rep | terminator | ready (s) | warm-up s (ka/hs) | keep-alive req | proxy CPU-s | req/s | req/CPU-s | handshakes | proxy CPU-s | hs/s | hs/CPU-s | RSS idle MiB | RSS after MiB |")
    w("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        name = NAMES.get(r["terminator"], r["terminator"])
        if "failed" in r:
            w("| %d | %s | failed: %s |" % (r["rep"], name, r["failed"].replace("|", "/")) + " |" * 11)
            continue
        m = metrics(r)
        w("| %d | %s | %.1f | %.0f/%.0f | %s | %.2f | %s | %s | %s | %.2f | %s | %s | %.1f | %.1f |" % (
            r["rep"], name, r.get("ready_s", 0.0), m["ka_warm_s"], m["hs_warm_s"], fmt(r["ka"]["requests"], 0), r["ka"]["cpu_s"], fmt(m["ka_rps"], 0),
            fmt(m["ka_per_cpu"], 0), fmt(r["hs"].get("conns", 0), 0), r["hs"]["cpu_s"], fmt(m["hs_rps"], 0),
            fmt(m["hs_per_cpu"], 0), m["rss_idle"], m["rss_after"]))
    w("")
    return "\n".join(out), any(failed[t] for t in terms)


def main(argv):
    if len(argv) == 3 and argv[1] == "--check":
        _, invalid = report(argv[2])
        return 1 if invalid else 0
    if len(argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    text, _ = report(argv[1])
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
