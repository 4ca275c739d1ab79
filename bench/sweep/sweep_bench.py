"""The ping sweep benchmark of issue 4: the daemon's sweeper against fping
on the same machine, in the same run.

The daemon sweeps the 65,534 addresses of 127.1.0.0/16 (a static pool, so
every address has a row; all of them answer on loopback) with settings
that match fping's: no retry, a 500 ms timeout, and a rate above what the
machine can send (1,000,000/s), so both go as fast as they can.  Between
two sweeps (the daemon is idle then) the script runs

    fping -i 0 -r 0 -t 500 -g 127.1.0.0/16

once, as it is, its output to a file (the daemon's raw socket has a
filter for its own identifier: fping's replies do not wake it).  Figures
per run:
the sweep's ICMP phase (first probe sent to last reply), its full cycle
(reading the targets, probing, writing the rows), fping's wall time; at
the end the daemon's peak RSS (VmHWM), fping's (wait4), and how many
addresses either reported down.  Medians over the runs.

    sweep_bench.py [--runs N] [--no-docs] [--command TEXT]
    sweep_bench.py --smoke        127.1.0.0/24, two sweeps: checks that it
                                  works (a ctest), measures nothing

Needs the services' environment (scripts/services env), root (raw
sockets), fping, and the daemon in IPAM_SYNCD_BIN."""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import harness  # noqa: E402
from bench import machine as bench_machine  # noqa: E402
from harness import Daemon, Database, Kafka, Topics, wait_until  # noqa: E402
from test_sync import event  # noqa: E402
from test_sweeper import SWEEP_LINE  # noqa: E402

DOC = os.path.join(ROOT, "docs", "BENCHMARKS.md")
BEGIN, END = "<!-- sweep:begin -->", "<!-- sweep:end -->"
FPING = "fping -i 0 -r 0 -t 500 -g {cidr}"


def sweeps(daemon, targets):
    """The daemon's sweep lines so far that probed `targets` addresses."""
    out = []
    for m in SWEEP_LINE.finditer(daemon.log()):
        s = {k: float(v) if "." in v else int(v) for k, v in m.groupdict().items()}
        if s["targets"] == targets:
            out.append(s)
    return out


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def run_fping(cidr):
    """Runs fping once; returns (wall seconds, alive, unreachable, peak RSS KiB).
    Its output (a line per address) goes to a file: through a pipe that
    this script reads, fping takes a third longer."""
    with tempfile.TemporaryFile() as out:
        began = time.monotonic()
        proc = subprocess.Popen(FPING.format(cidr=cidr).split(), stdout=out,
                                stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    return wall, text.count(" is alive"), text.count(" is unreachable"), usage.ru_maxrss


def median_range(values, digits=3):
    return "%.*f [%.*f–%.*f]" % (digits, statistics.median(values), digits, min(values),
                                 digits, max(values))


def machine():
    """The machine and commit, as bench/run describes them, and fping's version."""
    m = bench_machine()
    fping = subprocess.run(["fping", "--version"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True).stdout.strip()
    return "Machine: %s CPUs (`nproc`) %s, %s memory, Linux %s; %s; commit %s" % (
        m["nproc"], m["cpu"], m["memory"], m["kernel"],
        fping.replace("fping: Version", "fping") or "fping ?", m["commit"])


def render(r, command):
    n = r["targets"]
    icmp = [s["icmp"] for s in r["sweeps"]]
    total = [s["total"] for s in r["sweeps"]]
    write = [s["write"] for s in r["sweeps"]]
    read = [s["read"] for s in r["sweeps"]]
    fping = [f[0] for f in r["fping"]]
    ratio = statistics.median(fping) / statistics.median(icmp)
    down = sum(n - s["replies"] for s in r["sweeps"] + [r["first"]])
    fping_down = sum(f[2] for f in r["fping"]) + sum(n - f[1] - f[2] for f in r["fping"])
    first = r["first"]
    lines = [
        BEGIN,
        "## Ping sweep (issue 4)",
        "",
        "Results of `%s`, %s: %d runs, medians, the spread in brackets. %s. "
        "PostgreSQL 15 and Kafka from scripts/services; the daemon is the build in "
        "`IPAM_SYNCD_BIN` (bench/sweep/run builds Release)%s." % (
            command, time.strftime("%Y-%m-%d"), len(r["sweeps"]), r["machine"],
            r["daemon_note"]),
        "",
        "The daemon sweeps %s (a static pool: %s rows, every address answers on "
        "loopback) with `[sweeper] rate = 1000000, timeout_ms = 500, retries = 0, "
        "interval_ms = %d` (fping's `-t 500 -r 0`, and a rate above what the machine "
        "can send). Between two sweeps, while the daemon is idle, `%s` runs once, its "
        "output to a file (the daemon's raw socket filters fping's replies out). The "
        "ICMP phase is first probe sent to last reply; fping's figure is its whole "
        "run." % (r["cidr"], "{:,}".format(n), r["interval_ms"],
                                      FPING.format(cidr=r["cidr"])),
        "",
        "| measurement | ipam-syncd sweeper | fping | target | verdict |",
        "| --- | --- | --- | --- | --- |",
        "| ICMP phase, %s addresses (s) | **%s** | %s | ≥ 1.5× faster than fping "
        "| %s (%.2f×) |" % ("{:,}".format(n), median_range(icmp), median_range(fping),
                            "met" if ratio >= 1.5 else "**missed**", ratio),
        "| full cycle: read the targets + ICMP + write the rows (s) | **%s** "
        "(read %s, write after the ICMP phase %s) | — | < 2 s | %s |" % (
            median_range(total), "%.3f" % statistics.median(read),
            "%.3f" % statistics.median(write),
            "met" if statistics.median(total) < 2.0 else "**missed**"),
        "| first sweep (every row goes from inactive to active) (s) | ICMP %.3f, full "
        "cycle %.3f, %s rows changed | — | — | — |" % (
            first["icmp"], first["total"], "{:,}".format(first["changed"])),
        "| peak RSS (MiB) | %.1f (the whole daemon, VmHWM) | %.1f | — | — |" % (
            r["daemon_hwm_kib"] / 1024.0, max(f[3] for f in r["fping"]) / 1024.0),
        "| addresses reported down, all runs | **%d** | %d | 0 | %s |" % (
            down, fping_down, "met" if down == 0 else "**missed**"),
        "",
        "State rows written in the sweeps after the first: %s (schema 10: only "
        "addresses whose state changed, such as a round trip time more than twice or "
        "half the stored one and over 10 ms away; no address row). The ICMP phase is "
        "bound by the kernel's loopback echo path: a bare loop of sendmmsg/recvmmsg "
        "batches of 64 takes about as long. The write is those rows and one row for "
        "the subnet's pass." % (
            ", ".join(sorted({"{:,}".format(s["changed"]) for s in r["sweeps"]}))),
        END,
    ]
    return "\n".join(lines) + "\n"


def write_doc(section):
    text = open(DOC).read() if os.path.exists(DOC) else "# Benchmarks\n"
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1].lstrip("\n")
        text = before + section + ("\n" + after if after else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(DOC, "w") as f:
        f.write(text)


def measure(cidr, pool, n, runs, interval):
    """Starts a daemon on a fresh database, makes the rows, waits for the
    first sweep, then for `runs` more, with one fping before each.
    Returns the figures and the failures."""
    db, topics, kafka = Database(), Topics(), Kafka()
    # bench/run --rev REV measures the daemon of REV with REV's schema.
    daemon_section = {"log_level": "info"}
    if os.environ.get("IPAM_BENCH_SRC"):
        daemon_section["schema_dir"] = os.path.join(os.environ["IPAM_BENCH_SRC"], "schema")
    daemon = Daemon(db, topics, config={
        "daemon": daemon_section,
        "sweeper": {"enabled": "true", "interval_ms": str(interval), "rate": "1000000",
                    "timeout_ms": "500", "retries": "0", "down_after": "1"}})
    results = {"cidr": cidr, "targets": n, "interval_ms": interval, "fping": []}
    status = None
    try:
        daemon.start().wait_ready()
        kafka.send(topics.subnets, "bench", event("subnet.upserted", "bench",
                                                  {"name": "bench", "cidr": cidr,
                                                   "static_ip_pools": [pool]}, 1))
        kafka.flush()
        wait_until(lambda: db.scalar("SELECT count(*) FROM ipam") == n, 300, "%d rows" % n)
        # The first sweep that sees every row, then the runs.
        first = len(sweeps(daemon, n))
        wait_until(lambda: len(sweeps(daemon, n)) > first, 120, "the first sweep")
        for run in range(runs):
            fping = run_fping(cidr)
            results["fping"].append(fping)
            print("fping run %d: %.3f s, %d alive, %d unreachable" % (
                run + 1, fping[0], fping[1], fping[2]), flush=True)
            wait_until(lambda: len(sweeps(daemon, n)) > first + run + 1, 120,
                       "sweep %d" % (run + 2))
            s = sweeps(daemon, n)[first + run + 1]
            print("sweep %d: ICMP %.3f s, total %.3f s, %d replies of %d" % (
                run + 1, s["icmp"], s["total"], s["replies"], n), flush=True)
        measured = sweeps(daemon, n)[first:]
        results["first"] = measured[0]
        results["sweeps"] = measured[1:runs + 1]
        results["daemon_hwm_kib"] = vm_hwm_kib(daemon.proc.pid)
        results["active"] = db.scalar("SELECT count(*) FROM ipam WHERE active")
        status = daemon.stop()
    finally:
        daemon.close()
        db.close()
    failures = []
    if status != 0:
        failures.append("the daemon exited %s" % status)
    if results["active"] != n:
        failures.append("%d of %d addresses active" % (results["active"], n))
    for s in [results["first"]] + results["sweeps"]:
        if s["replies"] != n or s["down"] != 0:
            failures.append("sweep %d: %d replies, %d went down" % (s["number"], s["replies"],
                                                                  s["down"]))
    return results, failures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--command", default="bench/sweep/run")
    parser.add_argument("--daemon-note", default="",
                        help="what the daemon in IPAM_SYNCD_BIN was built from")
    args = parser.parse_args()
    if args.smoke and os.geteuid() != 0:
        print("SKIP: the sweep benchmark needs root (raw ICMP sockets)")
        return 77
    harness.require_services()
    if args.smoke:
        results, failures = measure("127.1.0.0/24", "127.1.0.1-127.1.0.254", 254, 2, 1000)
        print("smoke: %s" % ("; ".join(failures) or "ok"))
        return 1 if failures else 0
    cidr, pool, n = "127.1.0.0/16", "127.1.0.1-127.1.255.254", 65534
    results, failures = measure(cidr, pool, n, args.runs, 6000)
    section = render(dict(results, machine=machine(),
                          daemon_note=": " + args.daemon_note if args.daemon_note else ""),
                     args.command)
    print(section)
    if not args.no_docs:
        write_doc(section)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
