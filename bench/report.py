"""The results table of bench/run, and the ratio gates of its smoke form.

figures() reduces the raw results of one run to named figures (medians
over the repeats) and the ratios between measurements taken side by side
in that run; render() writes the table of docs/BENCHMARKS.md from them,
one row per target of issue 6 with its absolute figure and its ratio;
gates() checks the ratios that `bench/run --quick` must keep."""

import statistics
import time


def median(values):
    values = [v for v in values if v is not None and v == v]
    return statistics.median(values) if values else float("nan")


def fmt(x, digits=0):
    if x is None or x != x:
        return "—"
    return "{:,.{}f}".format(x, digits)


def spread(values, digits=0):
    values = [v for v in values if v is not None and v == v]
    if len(values) < 2:
        return ""
    return " [%s–%s]" % (fmt(min(values), digits), fmt(max(values), digits))


def verdict(ok):
    return "met" if ok else "**missed**"


def figures(results):
    """The medians and ratios of one run, by name (absent parts give none)."""
    f = {}
    t = results.get("throughput")
    if t:
        runs = t["runs"]
        f["ce_rate"] = median([r["server_rate"] for r in runs])
        f["ce_all_rate"] = median([r["rate"] for r in runs])
        f["ce_orm"] = median([o["servers"]["rate"] for o in t["orm"]])
        f["ce_setbased"] = median([s["events"] / s["seconds"] for s in t["setbased"]])
        floors = [r["events"] / r["floor"]["seconds"] for r in runs if r.get("floor")]
        f["ce_floor"] = median(floors)
        f["ce_vs_orm"] = f["ce_rate"] / f["ce_orm"]
        f["ce_vs_setbased"] = f["ce_all_rate"] / f["ce_setbased"]
        f["ce_vs_floor"] = f["ce_all_rate"] / f["ce_floor"]
    d = results.get("debezium")
    if d and d["runs"]:
        runs = d["runs"]
        f["dbz_rate"] = median([r["rate"] for r in runs])
        f["dbz_cpu_us"] = median([r["cpu_us"] for r in runs])
        floors = [r["events"] / r["floor"]["seconds"] for r in runs if r.get("floor")]
        f["dbz_floor"] = median(floors)
        f["dbz_vs_floor"] = f["dbz_rate"] / f["dbz_floor"]
        jdbc = [r["jdbc"] for r in runs if r.get("jdbc")]
        if jdbc:
            f["jdbc_rate"] = median([j["rate"] for j in jdbc])
            f["jdbc_cpu_us"] = median([j["cpu_us"] for j in jdbc])
            f["dbz_vs_jdbc"] = f["dbz_rate"] / f["jdbc_rate"]
            f["dbz_cpu_vs_jdbc"] = f["dbz_cpu_us"] / f["jdbc_cpu_us"]
    rb = results.get("rebuild")
    if rb:
        done = [r["seconds"] for r in rb["runs"] if not r["capped"]]
        f["rebuild_s"] = median(done)
        if rb.get("floor"):
            f["rebuild_floor_s"] = rb["floor"]["seconds"]
            f["rebuild_vs_floor"] = f["rebuild_s"] / f["rebuild_floor_s"]
    lt = results.get("latency")
    if lt and lt["runs"]:
        f["p50"] = median([r["p50"] for r in lt["runs"]])
        f["p99"] = median([r["p99"] for r in lt["runs"]])
        cf = results.get("commit_floor")
        if cf:
            f["commit_p99"] = cf["p99"]
            f["p99_vs_commit"] = f["p99"] / cf["p99"]
    pl = results.get("pools")
    if pl:
        f["pool_v4_ms"] = median([x["ms"] for x in pl["v4"]])
        f["pool_v6_ms"] = median([x["ms"] for x in pl["v6"]])
        f["pool_ms"] = max(f["pool_v4_ms"], f["pool_v6_ms"])
        if pl.get("floor"):
            f["pool_floor_ms"] = pl["floor"]["seconds"] * 1000.0 / len(pl["ids"])
            f["pool_vs_floor"] = f["pool_ms"] / f["pool_floor_ms"]
    hp = results.get("huge")
    if hp and hp.get("applied"):
        f["huge_s"] = max(hp["ms"]) / 1000.0
        f["huge_per_pool_s"] = f["huge_s"] / hp["count"]
        if hp.get("floor"):
            f["huge_floor_s"] = hp["floor"]["seconds"]
            f["huge_vs_floor"] = f["huge_s"] / f["huge_floor_s"]
    sc = results.get("scale")
    if sc and "small" in sc and "large" in sc:
        f["scale_small_ms"] = sc["small"]["ms"]
        f["scale_large_ms"] = sc["large"]["ms"]
        f["scale_ratio"] = f["scale_large_ms"] / f["scale_small_ms"]
    sw = results.get("sweep")
    if sw and "sweeps" in sw:
        f["sweep_write_s"] = median([s["write"] for s in sw["sweeps"]])
        f["sweep_total_s"] = median([s["total"] for s in sw["sweeps"]])
        f["sweep_icmp_s"] = median([s["icmp"] for s in sw["sweeps"]])
        f["sweep_changed"] = median([s["changed"] for s in sw["sweeps"]])
        f["fping_s"] = median(sw["fping"])
        f["sweep_vs_fping"] = f["fping_s"] / f["sweep_icmp_s"]
        f["sweep_total_vs_fping"] = f["sweep_total_s"] / f["fping_s"]
    return f


def render(results, command, quick, size):
    """The results table (Markdown), one row per target, with the ratio to
    the baseline measured side by side in the same run."""
    m = results["machine"]
    f = figures(results)
    out = []
    w = out.append
    w("Results of `%s`%s, %s, commit %s; %.0f minutes." % (
        command, " (the smoke form: small sizes, not a measurement)" if quick else "",
        time.strftime("%Y-%m-%d"), m["commit"], results.get("seconds", 0) / 60.0))
    w("")
    w("Machine: %s CPUs (`nproc`) %s, %s memory, Linux %s; PostgreSQL %s (a private "
      "cluster, default settings, fsync on, `track_commit_timestamp = on`); Kafka %s "
      "(single node, scripts/services); librdkafka %s; libpq %s; Kafka Connect %s with "
      "the Debezium JDBC sink %s. The daemon is a Release build (`-O3`) of the commit "
      "above. Medians of the runs; the spread is in brackets. Every ratio is between "
      "two figures of this run." % (
          m["nproc"], m["cpu"], m["memory"], m["kernel"], m["postgresql"], m["kafka"],
          m["librdkafka"], m["libpq"], m["kafka"], m.get("jdbc_sink", "3.6.0.Final")))
    w("")
    w("| # | measurement | result | ratio (side by side, this run) | target | verdict |")
    w("| --- | --- | --- | --- | --- | --- |")
    t = results.get("throughput")
    if t:
        c, runs = t["config"], t["runs"]
        fl = [r["floor"] for r in runs if r.get("floor")]
        w("| 1 | apply, bench's mix: %s CloudEvents (%s servers × %d versions, 5%% deleted, "
          "%s subnets v4+v6 with static pools, %s marks), daemon started on full topics → "
          "every offset committed | **%s server events/s** (%s all events/s)%s in %s s; "
          "CPU: daemon %s s, PostgreSQL %s s | %.1f× (a); %.0f%% of (b); %.1f%% of the "
          "floor (1c) | ≥ 50,000 server events/s | %s |" % (
              fmt(runs[0]["events"]), fmt(c["servers"]), c["versions"], fmt(c["subnets"]),
              fmt(int(c["subnets"] * 1.1)), fmt(f["ce_rate"]), fmt(f["ce_all_rate"]),
              spread([r["server_rate"] for r in runs]),
              fmt(median([r["seconds"] for r in runs]), 1),
              fmt(median([r.get("daemon_cpu") for r in runs]), 1),
              fmt(median([r.get("pg_cpu") for r in runs]), 1), f["ce_vs_orm"],
              100 * f["ce_vs_setbased"], 100 * f["ce_vs_floor"],
              verdict(f["ce_rate"] >= 50000)))
        w("| 1a | baseline (a) `bench/baseline_orm`: one transaction per event, ~7 round "
          "trips, one connection (server phase, first %d s) | %s server events/s%s | "
          "daemon = **%.1f×** (a) | ≥ 20× | %s |" % (
              size["orm_seconds"], fmt(f["ce_orm"]),
              spread([o["servers"]["rate"] for o in t["orm"]]), f["ce_vs_orm"],
              verdict(f["ce_vs_orm"] >= 20)))
        w("| 1b | baseline (b) `bench/baseline_setbased.sql`: the same row changes, audit "
          "included, set-based inside PostgreSQL | %s events/s%s | daemon = **%.0f%%** of "
          "(b) | report | — |" % (
              fmt(f["ce_setbased"]),
              spread([s["events"] / s["seconds"] for s in t["setbased"]]),
              100 * f["ce_vs_setbased"]))
        if fl:
            w("| 1c | the floor of row 1: its minimal durable row changes (%s rows: one write "
              "per changed entity and address, no audit) with COPY, one transaction | %s "
              "events/s%s (%s s) | daemon = **%.1f%%** of the floor | report | — |" % (
                  fmt(fl[0]["rows"]), fmt(f["ce_floor"]),
                  spread([r["events"] / r["floor"]["seconds"] for r in runs if r.get("floor")]),
                  fmt(median([x["seconds"] for x in fl]), 2), 100 * f["ce_vs_floor"]))
    d = results.get("debezium")
    if d and d["runs"]:
        c, runs = d["config"], d["runs"]
        jdbc = [r["jdbc"] for r in runs if r.get("jdbc")]
        fl = [r["floor"] for r in runs if r.get("floor")]
        ok_rate = f["dbz_rate"] >= 40000
        ok_jdbc = f.get("dbz_vs_jdbc", 0) >= 2
        w("| 2 | apply, Debezium: %s server events (%s servers × %d versions, ~3.5 KB each "
          "with the schema block, `schemas.enable=true`), %s subnets applied before, "
          "daemon started on the full topic → every offset committed | **%s events/s**%s; "
          "CPU: daemon %s s, PostgreSQL %s s | %s | ≥ 40,000 events/s and ≥ 2× the JDBC "
          "sink | %s |" % (
              fmt(runs[0]["events"]), fmt(c["servers"]), c["versions"], fmt(c["subnets"]),
              fmt(f["dbz_rate"]), spread([r["rate"] for r in runs]),
              fmt(median([r["daemon_cpu"] for r in runs]), 1),
              fmt(median([r["pg_cpu"] for r in runs]), 1),
              "**%.2f×** the JDBC sink (2a)" % f["dbz_vs_jdbc"] if jdbc
              else "(no JDBC sink in this run)",
              ("rate: %s; vs the sink: %s" % (verdict(ok_rate), verdict(ok_jdbc))
               if ok_rate != ok_jdbc else verdict(ok_rate)) if jdbc
              else verdict(ok_rate) + " (rate)"))
        if jdbc:
            w("| 2a | the Debezium JDBC sink %s on Kafka Connect %s, the same topic: upsert "
              "mode, `primary.key.mode=record_key`, deletes on, 1 task, a table of its own; "
              "POST of the connector → commit of the last row | %s events/s%s; CPU: Connect "
              "%s s | daemon = **%.2f×** the sink | daemon ≥ 2× | %s |" % (
                  results["machine"].get("jdbc_sink", "3.6.0.Final"),
                  results["machine"]["kafka"], fmt(f["jdbc_rate"]),
                  spread([j["rate"] for j in jdbc]), fmt(median([j["cpu"] for j in jdbc]), 1),
                  f["dbz_vs_jdbc"], verdict(ok_jdbc)))
        if fl:
            w("| 2b | the floor of row 2: its minimal durable row changes (%s rows: %s) with "
              "COPY, one transaction | %s events/s%s (%s s) | daemon = **%.1f%%** of the "
              "floor | ≥ 25 %% | %s |" % (
                  fmt(fl[0]["rows"]), floor_detail(fl[0]), fmt(f["dbz_floor"]),
                  spread([r["events"] / r["floor"]["seconds"] for r in runs if r.get("floor")]),
                  fmt(median([x["seconds"] for x in fl]), 2), 100 * f["dbz_vs_floor"],
                  verdict(f["dbz_vs_floor"] >= 0.25)))
        w("| 2c | daemon CPU per Debezium event (its process's user + system CPU over row 2 "
          "/ events) | **%s µs**%s | %s | ≤ 10 µs | %s |" % (
              fmt(f["dbz_cpu_us"], 1), spread([r["cpu_us"] for r in runs], 1),
              "%.2f× the JDBC sink's Connect (%s µs)" % (f["dbz_cpu_vs_jdbc"],
                                                        fmt(f["jdbc_cpu_us"], 1))
              if jdbc else "—", verdict(f["dbz_cpu_us"] <= 10)))
    rb = results.get("rebuild")
    if rb:
        c = rb["config"]
        head = ("| 3 | rebuild of %s events (%s servers × %d versions + subnets + marks) over a "
                "database holding the same state (%s rows), `--rebuild` start → "
                "`rebuild: swapped in` | " % (fmt(rb["events"]), fmt(c["servers"]),
                                              c["versions"], fmt(rb["rows"])))
        ratio = ("%.1f× the floor: COPY of the rebuilt rows into empty tables, %s s"
                 % (f["rebuild_vs_floor"], fmt(f["rebuild_floor_s"], 2))
                 if "rebuild_vs_floor" in f else "—")
        done = [r["seconds"] for r in rb["runs"] if not r["capped"]]
        hwm = [r["hwm"] for r in rb["runs"] if not r["capped"] and r.get("hwm")]
        folded = [r["folded"] for r in rb["runs"]
                  if not r["capped"] and r.get("folded") is not None]
        if done:
            w(head + "**%s s**%s%s%s | %s | ≤ 30 s | %s |" % (
                fmt(f["rebuild_s"], 1), spread(done, 1),
                "; daemon peak RSS %s MiB" % fmt(median(hwm), 0) if hwm else "",
                "; %.0f%% of the events folded into later versions of their keys"
                % (100.0 * median(folded) / rb["events"]) if folded else "",
                ratio, verdict(f["rebuild_s"] <= 30)))
        else:
            r = rb["runs"][0]
            rate = r["applied"] / r["seconds"] if r["seconds"] else 0
            w(head + "**not swapped in within the %d s cap**: %s events applied (%s events/s) "
              "| — | ≤ 30 s | **missed** |" % (c["cap"], fmt(r["applied"]), fmt(rate)))
    lt = results.get("latency")
    if lt and lt["runs"]:
        w("| 4 | latency at a steady %s events/s (server moves, %d s × %d runs, each after "
          "a CHECKPOINT; %d checkpoint(s) during them), produce → "
          "commit | p50 **%s ms**, p99 **%s ms**%s, max %s ms | %s | p99 ≤ 50 ms | %s |" % (
              fmt(lt["config"]["rate"]), lt["config"]["duration"], len(lt["runs"]),
              sum(r.get("checkpoints", 0) for r in lt["runs"]),
              fmt(f["p50"], 1), fmt(f["p99"], 1), spread([r["p99"] for r in lt["runs"]], 1),
              fmt(max(r["max"] for r in lt["runs"]), 1),
              "p99 = %.0f× the commit floor (one-row UPDATE + COMMIT at the same rate: p99 "
              "%s ms)" % (f["p99_vs_commit"], fmt(f["commit_p99"], 2))
              if "p99_vs_commit" in f else "—", verdict(f["p99"] <= 50)))
    pl = results.get("pools")
    if pl:
        n4, n6 = pl["v4"][0]["rows"], pl["v6"][0]["rows"]
        w("| 5 | one subnet event with a %s-address static pool (IPv4 /%d) / %s (IPv6 /%d), "
          "produce → commit, on a running daemon holding state | v4 **%s ms**, v6 **%s ms** "
          "| %s | ≤ 1,000 ms | %s |" % (
              fmt(n4), pl["bits"][0], fmt(n6), pl["bits"][1], fmt(f["pool_v4_ms"]),
              fmt(f["pool_v6_ms"]),
              "%.1f× the floor (COPY of a pool's rows: %s ms)" % (
                  f["pool_vs_floor"], fmt(f["pool_floor_ms"]))
              if "pool_vs_floor" in f else "—", verdict(f["pool_ms"] <= 1000)))
        w("| 5b | a /8 pool (11.0.0.1-11.255.255.254) | refused in %s ms, dead letter: "
          "“%s”, 0 rows | — | refused quickly | %s |" % (
              fmt(pl["huge"]["ms"]), pl["huge"]["reason"], verdict(pl["huge"]["ms"] < 1000)))
    hp = results.get("huge")
    if hp:
        what = ("| 6 | %d subnet events with %s-address static pools (IPv4 /%d) produced "
                "together, on a daemon run as systemd would with `WatchdogSec=%d` "
                "(WATCHDOG_USEC, $NOTIFY_SOCKET) | " % (
                    hp["count"], fmt(hp["addresses"]), hp["bits"], hp["watchdog_s"]))
        ping = ("longest gap between watchdog pings %s s%s" % (
            fmt(hp["max_gap"], 1),
            ": pings **withheld**, systemd would have killed it" if hp["killed"] else
            (" (pings withheld for a while)" if hp["withheld"] else ", never withheld")))
        if hp["applied"]:
            ok = f["huge_per_pool_s"] <= 10 and not hp["killed"]
            w(what + "applied, %s rows, in %d transaction(s): produce → commit **%s s** "
                     "(**%s s a pool**); %s; peak RSS %s MiB | %s | applied, no watchdog "
                     "kill, ≤ 10 s each | %s |" % (
                         fmt(hp["rows"]), hp["transactions"], fmt(f["huge_s"], 1),
                         fmt(f["huge_per_pool_s"], 1), ping, fmt(hp["hwm"], 1),
                         "%.0f× the floor (COPY of the %s rows: %s s)" % (
                             f["huge_vs_floor"], fmt(hp["floor"]["rows"]),
                             fmt(f["huge_floor_s"], 1)) if "huge_vs_floor" in f else "—",
                         verdict(ok)))
        else:
            w(what + "**not applied** within %s s (%s); %s | — | applied, no watchdog kill, "
                     "≤ 10 s each | **missed** |" % (
                         fmt(hp["seconds"]), "the daemon is alive" if hp["alive"]
                         else "the daemon exited", ping))
    sc = results.get("scale")
    if sc and "scale_ratio" in f:
        s, g = sc["small"], sc["large"]
        w("| 7 | one subnet upsert (a pool grown by 20 addresses, or a new subnet; %d of "
          "each), produce → commit, at %s subnets and %s addresses vs at %s and %s (the "
          "state written with SQL straight into the tables, vacuumed) | **%s ms** vs %s ms "
          "(changed pool %s vs %s, new subnet %s vs %s) | large = **%.2f×** small | ≤ 2× "
          "| %s |" % (
              len(s["changed"]), fmt(g["subnets"]), fmt(g["addresses"]), fmt(s["subnets"]),
              fmt(s["addresses"]), fmt(f["scale_large_ms"], 1), fmt(f["scale_small_ms"], 1),
              fmt(median(g["changed"]), 1), fmt(median(s["changed"]), 1),
              fmt(median(g["new"]), 1), fmt(median(s["new"]), 1), f["scale_ratio"],
              verdict(f["scale_ratio"] <= 2)))
    sw = results.get("sweep")
    if sw and "sweeps" in sw:
        ok_write, ok_total = f["sweep_write_s"] <= 0.1, f["sweep_total_s"] <= 1
        w("| 8 | sweep of a %s static pool on loopback (%s addresses, all answer), the "
          "sweeps after the first (%d; no state change to make), shared cluster | write "
          "phase **%s s**, full cycle **%s s** (ICMP %s s), %s rows written a sweep | ICMP "
          "%.2f× faster than fping (%s s); full cycle = %.2f× fping | write ≤ 0.1 s, full "
          "cycle ≤ 1 s | %s |" % (
              sw["config"]["cidr"], fmt(sw["targets"]), len(sw["sweeps"]),
              fmt(f["sweep_write_s"], 3), fmt(f["sweep_total_s"], 3),
              fmt(f["sweep_icmp_s"], 3), fmt(f["sweep_changed"]), f["sweep_vs_fping"],
              fmt(f["fping_s"], 3), f["sweep_total_vs_fping"],
              verdict(ok_write and ok_total) if ok_write == ok_total else
              "write: %s; full cycle: %s" % (verdict(ok_write), verdict(ok_total))))
    mm = results.get("memory")
    if mm:
        r = mm["rows"]
        w("| 9 | daemon peak RSS (VmHWM) applying %d subnet events (IPv4 /%d, whole static "
          "pools) into %s rows of `ipam`%s | **%s MiB** | — | bounded | — |" % (
              r["pools"], r["bits"], fmt(r["rows"]),
              " (capped at %.0f s: %s of %s events)" % (r["seconds"], fmt(r["committed"]),
                                                         fmt(r["events"])) if r["capped"] else "",
              fmt(r["hwm"], 1)))
        for bl in mm["backlogs"]:
            w("| 9b | daemon peak RSS with %s events waiting in Kafka (the first %d s of "
              "consuming them: %s applied) | **%s MiB** | — | bounded | — |" % (
                  fmt(bl["events"]), bl["window"], fmt(bl["consumed"]), fmt(bl["hwm"], 1)))
        if len(mm["backlogs"]) > 1:
            h = [bl["hwm"] for bl in mm["backlogs"]]
            w("| 9c | peak RSS against the backlog (%s events) | %s | %.2f× | does not grow "
              "| %s |" % (" vs ".join(fmt(bl["events"]) for bl in mm["backlogs"]),
                          " vs ".join("%s MiB" % fmt(x, 1) for x in h), h[-1] / h[0],
                          verdict(max(h) <= min(h) * 1.25 + 8)))
    return "\n".join(out)


def floor_detail(fl):
    """What the floor wrote, per table: "100,000 server inserts, ..."."""
    parts = []
    for table, kinds in fl["tables"].items():
        for kind, n in kinds.items():
            if n:
                parts.append("%s %s %ss" % (fmt(n), table.split(".")[-1], kind))
    return ", ".join(parts) or "none"


# The ratio gates of `bench/run --quick` (docs/BENCHMARKS.md, "Smoke form
# for CI"): name, figure, bound, and whether the figure must stay at or
# above the bound (True) or at or below it (False).  Each compares two
# measurements of the same quick run, so a slower machine moves both.
GATES = (
    ("daemon ÷ baseline (a), CloudEvents apply", "ce_vs_orm", 1.5, True),
    ("daemon ÷ floor, Debezium apply", "dbz_vs_floor", 0.008, True),
    ("one subnet upsert, large state ÷ small state", "scale_ratio", 6.0, False),
    ("rebuild ÷ its floor (COPY of the rebuilt rows)", "rebuild_vs_floor", 60.0, False),
    ("sweep's full cycle ÷ fping of the same addresses", "sweep_total_vs_fping", 12.0, False),
)

# Gates on what a run may skip: the sweep needs root and fping.
SKIPPABLE = {"sweep_total_vs_fping": "sweep"}


def gates(results):
    """The gate lines, and whether every gate held.  A gate whose figure
    the run did not measure is a failure too (the smoke form measures all),
    but for those of SKIPPABLE when their part did not run or was skipped:
    a line says so."""
    f = figures(results)
    lines, ok = [], True
    for name, key, bound, at_least in GATES:
        value = f.get(key)
        part = SKIPPABLE.get(key)
        skipped = part is not None and ("not run" if part not in results
                                        else results[part].get("skipped"))
        if value is None and skipped:
            lines.append("gate skipped: %s (%s)" % (name, skipped))
            continue
        held = value is not None and value == value and (
            value >= bound if at_least else value <= bound)
        ok = ok and held
        lines.append("%s: %s = %s, must be %s %s" % (
            "gate held" if held else "GATE FAILED", name,
            "not measured" if value is None else "%.3g" % value,
            "≥" if at_least else "≤", "%g" % bound))
    return lines, ok
