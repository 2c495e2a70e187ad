#!/usr/bin/env python3
"""Benchmarks dotlock against dotlockfile, procmail's lockfile and flock(1)
in one run on one machine, and writes BENCHMARKS.md.

    python3 bench/bench.py            # builds dotlock --release first
    BENCH_RUNS=300 BENCH_HANDOVERS=50 python3 bench/bench.py

Needs: liblockfile-bin (dotlockfile), procmail (lockfile), util-linux (flock),
time (GNU time, for max RSS).
Cases:
  1. uncontended lock + unlock, as whole processes
  2. command mode: TOOL -l L true
  3. hand-over latency: from the holder's release to the waiter's acquisition
  4. contended throughput: 4 processes x 200 cycles of TOOL -l L true
  5. peak memory (max RSS) of case 2
  6. idle waiters: CPU and context switches of 200 waiters on a held lock
  7. (bench/nfs.py, on the NFS bed, as root) hand-over across machines;
     kept as it is when this script rewrites the rest

    BENCH_ONLY=6 python3 bench/bench.py   # case 6 alone, its section rewritten
    BENCH_SHORT=1 python3 bench/bench.py  # a few cycles of each case, written
                                          # to target/bench/, never BENCHMARKS.md
                                          # (.ci/run: so that the script cannot rot)
"""

import fcntl
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHORT = bool(os.environ.get("BENCH_SHORT"))
RUNS = int(os.environ.get("BENCH_RUNS", "5" if SHORT else "300"))
HANDOVERS = int(os.environ.get("BENCH_HANDOVERS", "2" if SHORT else "50"))
CYCLES = int(os.environ.get("BENCH_CYCLES", "10" if SHORT else "200"))
# Case 4's runs (each tool, alternating) and the lost-wake-up loop's.
CONTENDED_RUNS = int(os.environ.get("BENCH_CONTENDED_RUNS", "2" if SHORT else "15"))
LOOP_RUNS = int(os.environ.get("BENCH_LOOP_RUNS", "3" if SHORT else "100"))
WORKERS = 4
OUT = os.path.join(ROOT, "target", "bench", "BENCHMARKS.md") if SHORT else os.path.join(ROOT, "BENCHMARKS.md")


def need(tool):
    path = shutil.which(tool)
    if not path:
        sys.exit(f"bench: {tool} not found (apt-get install liblockfile-bin procmail util-linux time)")
    return path


def median_ms(samples):
    return statistics.median(samples) * 1000


def p95_ms(samples):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))] * 1000


def timed(cases, runs):
    """Time each case `runs` times. The tools take turns, in a new random
    order each round, so that drift in the machine's speed (frequency,
    caches, other work) falls on every tool alike."""
    out = {name: [] for name in cases}
    names = list(cases)
    for _ in range(runs):
        random.shuffle(names)
        for name in names:
            t0 = time.perf_counter()
            cases[name]()
            out[name].append(time.perf_counter() - t0)
    return out


def run(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def case1(tools, lock):
    """Uncontended lock + unlock as two processes."""
    dotlock, dotlockfile, lockfile = tools["dotlock"], tools["dotlockfile"], tools["lockfile"]
    cases = {
        "dotlock": lambda: (run(dotlock, lock), run(dotlock, "-u", lock)),
        "dotlockfile": lambda: (run(dotlockfile, lock), run(dotlockfile, "-u", lock)),
        "lockfile + rm -f": lambda: (run(lockfile, lock), run("rm", "-f", lock)),
    }
    return timed(cases, RUNS)


def case1u(tools, lock):
    """Unlock alone: each tool's unlock of its own lock, timed apart from
    the lock taken before it (untimed)."""
    pairs = {
        "dotlock -u": (tools["dotlock"], [tools["dotlock"], "-u", lock]),
        "dotlockfile -u": (tools["dotlockfile"], [tools["dotlockfile"], "-u", lock]),
    }
    out = {name: [] for name in pairs}
    for _ in range(RUNS):
        order = list(pairs.items())
        random.shuffle(order)
        for name, (tool, unlock) in order:
            run(tool, lock)
            t0 = time.perf_counter()
            run(*unlock)
            out[name].append(time.perf_counter() - t0)
    return out


def case2(tools, lock):
    """Command mode: take the lock, run true, release."""
    cases = {
        "dotlock": [tools["dotlock"], "-l", lock, "true"],
        "dotlockfile": [tools["dotlockfile"], "-l", lock, "true"],
        # flock(1) leaves its file behind: give it a name of its own.
        "flock": [tools["flock"], lock + ".flock", "true"],
    }
    return timed({name: (lambda a=argv: run(*a)) for name, argv in cases.items()}, RUNS)


def case3(tools, d):
    """Hand-over latency. The holder (this script) releases at t0; the
    waiter, `sh -c 'TOOL L && date +%s%N'`, prints when it got the lock."""
    lock = os.path.join(d, "handover.lock")
    # flock(1) leaves its file behind: it gets a name of its own.
    flock_lock = lock + ".flock"
    waiters = {
        "dotlock": f'"{tools["dotlock"]}" -r -1 "{lock}"',
        "dotlockfile": f'"{tools["dotlockfile"]}" -r -1 "{lock}"',
        "lockfile": f'"{tools["lockfile"]}" "{lock}"',
        "flock": f'"{tools["flock"]}" "{flock_lock}" true',
    }
    results = {}
    for name, waiter in waiters.items():
        lat = []
        for _ in range(HANDOVERS):
            fd = None
            if name == "flock":
                fd = os.open(flock_lock, os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                with open(lock, "w") as f:
                    f.write("0\n")
            w = subprocess.Popen(["sh", "-c", f"{waiter} && date +%s%N"], stdout=subprocess.PIPE)
            time.sleep(random.uniform(0.2, 1.0))  # the waiter is asleep by now
            t0 = time.time_ns()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            else:
                os.unlink(lock)
            out, _ = w.communicate()
            lat.append((int(out.decode().strip()) - t0) / 1e9)
            if name != "flock":
                os.unlink(lock)
        results[name] = lat
        print(f"  {name}: median {median_ms(lat):.1f} ms", file=sys.stderr)
    return results


def contended_run(cmd, cycles):
    """WORKERS shell loops of `cycles` runs of `cmd`: the wall time."""
    script = f"i=0; while [ $i -lt {cycles} ]; do {cmd} || exit 1; i=$((i+1)); done"
    t0 = time.perf_counter()
    procs = [subprocess.Popen(["sh", "-c", script]) for _ in range(WORKERS)]
    for p in procs:
        if p.wait() != 0:
            sys.exit(f"bench: a contended worker failed: {cmd}")
    return time.perf_counter() - t0


def case4(tools, d):
    """Contended throughput: WORKERS shell loops of CYCLES `TOOL -l L true`,
    CONTENDED_RUNS times each, the tools alternating in random order."""
    lock = os.path.join(d, "contended.lock")
    loops = {
        "dotlock": f'"{tools["dotlock"]}" -r -1 -l "{lock}" true',
        "flock": f'"{tools["flock"]}" "{lock}.flock" true',
    }
    results = {name: [] for name in loops}
    for _ in range(CONTENDED_RUNS):
        order = list(loops.items())
        random.shuffle(order)
        for name, cmd in order:
            results[name].append(contended_run(cmd, CYCLES))
    return results


def case4_loop(tools, d):
    """The lost wake-up's loop: WORKERS x 100 `dotlock -r -1 -l L true`,
    LOOP_RUNS times: the spread of the runs (a lost wake-up costs a
    run the schedule's first 5 s)."""
    lock = os.path.join(d, "loop.lock")
    cmd = f'"{tools["dotlock"]}" -r -1 -l "{lock}" true'
    return [contended_run(cmd, 100 if not SHORT else CYCLES) for _ in range(LOOP_RUNS)]


def case5(tools, lock):
    """Max RSS (KiB) of the case-2 commands, the smallest of 20 runs, from
    GNU time(1): a child forked by Python would count Python's own pages."""
    cases = {
        "dotlock": [tools["dotlock"], "-l", lock, "true"],
        "dotlockfile": [tools["dotlockfile"], "-l", lock, "true"],
        "flock": [tools["flock"], lock + ".flock", "true"],
    }
    out = {}
    for name, argv in cases.items():
        rss = []
        for _ in range(20):
            r = subprocess.run([tools["time"], "-f", "%M", *argv], capture_output=True, text=True, check=True)
            rss.append(int(r.stderr.strip().splitlines()[-1]))
        out[name] = min(rss)
    return out


IDLE_WAITERS = int(os.environ.get("BENCH_IDLE_WAITERS", "20" if SHORT else "200"))
IDLE_SECONDS = float(os.environ.get("BENCH_IDLE_SECONDS", "2" if SHORT else "30"))
# Unrelated files created and removed per second beside the busy
# directory's waiters (a spool, /var/lock).
CHURN = 100


def churn(d, seconds):
    """CHURN create+unlink of unrelated files per second in `d`."""
    end = time.perf_counter() + seconds
    k = 0
    while time.perf_counter() < end:
        p = os.path.join(d, f"unrelated{k % 10}")
        open(p, "w").close()
        os.unlink(p)
        k += 1
        time.sleep(max(0.0, (k / CHURN) - (time.perf_counter() - (end - seconds))))


def idle_run(tools, name, lock, seconds, busy=False):
    """Start IDLE_WAITERS waiters, let them wait `seconds`, end them; their
    CPU seconds and context switches in all, from wait4(2)'s rusage. Quiet:
    with `-i 1`; `busy` (CHURN unrelated files coming and going beside the
    lock): on the tools' default schedule, so that what is measured is what
    the directory's changes cost, not the waiters' own attempts."""
    schedule = [] if busy else ["-i", "1"]
    waiters = [
        subprocess.Popen([tools[name], "-r", "-1", *schedule, lock],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(IDLE_WAITERS)
    ]
    if busy:
        churn(os.path.dirname(lock), seconds)
    else:
        time.sleep(seconds)
    for w in waiters:
        w.terminate()
    cpu, cs = 0.0, 0
    for w in waiters:
        _, _, ru = os.wait4(w.pid, 0)
        w.returncode = 0
        cpu += ru.ru_utime + ru.ru_stime
        cs += ru.ru_nvcsw + ru.ru_nivcsw
    return cpu, cs


def case6(tools, d, busy=False):
    """IDLE_WAITERS waiters with `-i 1` on a lock held by a live command:
    CPU time and context switches per second of all of them together.
    Start-up is taken out: a run of 3 s is subtracted from one of
    3 + IDLE_SECONDS s. `busy`: CHURN unrelated files come and go in the
    lock's directory meanwhile."""
    results = {}
    for name in ["dotlock", "dotlockfile"]:
        sub = os.path.join(d, f"{'busy' if busy else 'quiet'}-{name}")
        os.mkdir(sub)
        lock = os.path.join(sub, "idle.lock")
        holder = subprocess.Popen([tools["dotlock"], lock, "sleep", "600"])
        while not os.path.exists(lock):
            time.sleep(0.01)
        short = idle_run(tools, name, lock, 3, busy)
        long = idle_run(tools, name, lock, 3 + IDLE_SECONDS, busy)
        holder.terminate()
        holder.wait()
        cpu = max(long[0] - short[0], 0.0) / IDLE_SECONDS
        cs = max(long[1] - short[1], 0) / IDLE_SECONDS
        results[name] = (cpu * 1000, cs)
        print(f"  {name}: {cpu * 1000:.1f} ms CPU/s, {cs:.0f} context switches/s", file=sys.stderr)
    return results


def case6_lines(c6):
    return table(
        f"6. Idle waiters: {IDLE_WAITERS} waiters with `-i 1` on a lock held by a live command "
        f"({IDLE_SECONDS:.0f} s after settling, all waiters together, from wait4(2))",
        ["CPU per second", "context switches per second", "CPU vs dotlockfile"],
        {n: [f"{ms:.1f} ms", f"{cs:.0f}", f"{ms / max(c6['dotlockfile'][0], 0.001):.2f}"] for n, (ms, cs) in c6.items()},
        intro=[
            "A waiter that finds the lock held by a live holder creates no file, so waiters",
            "do not wake each other's directory watches; each attempt is a look at the lock",
            "and a liveness probe of its holder (a `poll(2)` of its pidfd), which can cost",
            "more CPU than dotlockfile's create-link-unlink on a local disk. Each attempt",
            "costs some tens of microseconds; between runs on one machine the ratio has",
            "ranged from 0.8 to 2.2, so read it as \"the same order as dotlockfile\".",
            "Run alone with",
            "`BENCH_ONLY=6 python3 bench/bench.py`, which rewrites this section only.",
        ],
    )


def table(title, columns, rows, intro=(), level=2):
    """A section of BENCHMARKS.md: heading (of `level`), optional intro
    lines, and a table of one row a tool."""
    out = ["", f"{'#' * level} {title}", ""]
    if intro:
        out += [*intro, ""]
    out += ["| tool | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    out += [f"| `{name}` | " + " | ".join(cells) + " |" for name, cells in rows.items()]
    return out


def machine():
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return model


def build_dotlock():
    """Build dotlock as `make` does, and return the program cargo made."""
    out = subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--bin", "dotlock", "--message-format=json"],
        cwd=ROOT, check=True, stdout=subprocess.PIPE,
    ).stdout.decode()
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            if msg["target"]["name"] == "dotlock":
                return msg["executable"]
    sys.exit("bench: cargo built no dotlock")


def linkage(path):
    """"static" or "dynamic": whether the program names a dynamic loader."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    return "dynamic" if b"ld-linux" in head else "static"


def main():
    if os.environ.get("BENCH_ONLY") == "6":
        return main_idle()
    dotlock = build_dotlock()
    tools = {
        "dotlock": dotlock,
        "dotlockfile": need("dotlockfile"),
        "lockfile": need("lockfile"),
        "flock": need("flock"),
        "time": need("/usr/bin/time"),
    }
    d = tempfile.mkdtemp(prefix="lockutils-bench-")
    fstype = subprocess.check_output(["stat", "-f", "-c", "%T", d]).decode().strip()
    lock = os.path.join(d, "bench.lock")
    print("case 1 ...", file=sys.stderr)
    c1 = case1(tools, lock)
    c1u = case1u(tools, lock)
    print("case 2 ...", file=sys.stderr)
    c2 = case2(tools, lock)
    print("case 3 (slow: the C tools sleep 5 and 8 s) ...", file=sys.stderr)
    c3 = case3(tools, d)
    print("case 4 ...", file=sys.stderr)
    c4 = case4(tools, d)
    c4loop = case4_loop(tools, d)
    print("case 5 ...", file=sys.stderr)
    c5 = case5(tools, lock)
    print("case 6 ...", file=sys.stderr)
    c6 = case6(tools, d)
    c6busy = case6(tools, d, busy=True)
    shutil.rmtree(d)

    def versus(results, ours, other):
        return median_ms(results[ours]) / median_ms(results[other])

    r1 = versus(c1, "dotlock", "dotlockfile")
    r1u = versus(c1u, "dotlock -u", "dotlockfile -u")
    r2 = versus(c2, "dotlock", "dotlockfile")
    r2f = versus(c2, "dotlock", "flock")
    r4 = statistics.median(c4["dotlock"]) / statistics.median(c4["flock"])
    loop_med = statistics.median(c4loop)
    loop_spread = max(c4loop) / loop_med
    r5 = c5["dotlock"] / c5["dotlockfile"]
    h3 = median_ms(c3["dotlock"])
    verdict = lambda ok: "met" if ok else "**missed**"

    lines = [
        "# Benchmarks",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}, {os.cpu_count()} cores, "
        f"Linux {platform.release()}, lock directory on {fstype}. "
        f"dotlock release build, linked {linkage(dotlock)}; dotlockfile from liblockfile-bin, lockfile from procmail, flock from util-linux.",
        "",
        "Regenerate with `python3 bench/bench.py` (sizes: `BENCH_RUNS`, `BENCH_HANDOVERS`, `BENCH_CYCLES`,",
        "`BENCH_CONTENDED_RUNS`, `BENCH_LOOP_RUNS`). Every case below was measured in this one run.",
    ]
    ratio = lambda base: lambda s: median_ms(s) / median_ms(base)
    lines += table(
        f"1. Uncontended lock + unlock, as whole processes ({RUNS} runs, median)",
        ["median", "vs dotlockfile"],
        {n: [f"{median_ms(s):.2f} ms", f"{ratio(c1['dotlockfile'])(s):.2f}"] for n, s in c1.items()},
    )
    lines += table(
        f"1u. Unlock alone: `TOOL -u L` of the tool's own lock ({RUNS} runs, median)",
        ["median", "vs dotlockfile -u"],
        {n: [f"{median_ms(s):.2f} ms", f"{ratio(c1u['dotlockfile -u'])(s):.2f}"] for n, s in c1u.items()},
    )
    lines += table(
        f"2. Command mode: `TOOL -l L true` ({RUNS} runs, median)",
        ["median", "vs dotlockfile"],
        {n: [f"{median_ms(s):.2f} ms", f"{ratio(c2['dotlockfile'])(s):.2f}"] for n, s in c2.items()},
    )
    lines += table(
        f"3. Hand-over latency, release to acquisition ({HANDOVERS} hand-overs, default schedules)",
        ["median", "95th percentile"],
        {n: [f"{median_ms(s):.1f} ms", f"{p95_ms(s):.1f} ms"] for n, s in c3.items()},
        intro=[
            "The waiter is asleep when the holder releases (0.2–1 s after it started waiting);",
            "the time includes starting `date` in the waiter's shell, the same for every tool.",
        ],
    )
    lines += table(
        f"4. Contended throughput: {WORKERS} processes × {CYCLES} cycles of `TOOL -l L true` "
        f"({CONTENDED_RUNS} runs each, alternating)",
        ["median", "slowest", "median vs flock"],
        {n: [f"{statistics.median(t):.2f} s", f"{max(t):.2f} s",
             f"{statistics.median(t) / statistics.median(c4['flock']):.2f}"] for n, t in c4.items()},
    )
    lines += table(
        f"4b. No lost wake-up: {WORKERS} shell loops × 100 cycles of `dotlock -r -1 -l L true`, {LOOP_RUNS} runs",
        ["median", "fastest", "slowest", "slowest / median"],
        {"dotlock": [f"{loop_med:.2f} s", f"{min(c4loop):.2f} s", f"{max(c4loop):.2f} s", f"{loop_spread:.2f}"]},
        intro=["A waiter that missed the release it should wake on would sleep out the",
               "default schedule's first 5 s: a run of 5 s or more."],
    )
    lines += table(
        "5. Peak memory of case 2 (max RSS from GNU time, smallest of 20 runs)",
        ["max RSS", "vs dotlockfile"],
        {n: [f"{kb} KiB", f"{kb / c5['dotlockfile']:.2f}"] for n, kb in c5.items()},
    )
    lines += case6_lines(c6)
    lines += table(
        f"6b. Idle waiters in a busy directory: {IDLE_WAITERS} waiters on the default schedule "
        f"(`-r -1`), with {CHURN} unrelated files created and removed per second beside the lock",
        ["CPU per second", "context switches per second", "CPU vs dotlockfile"],
        {n: [f"{ms:.1f} ms", f"{cs:.0f}", f"{ms / max(c6busy['dotlockfile'][0], 0.001):.2f}"]
         for n, (ms, cs) in c6busy.items()},
        intro=["A waiter watches its lock's directory until unrelated changes there outnumber",
               "changes of its lock; then it watches the lock itself (inotify; probes every",
               "2 s for the waiters beyond the 128 inotify instances a user may have)."],
    )
    # Case 7 runs on the NFS bed (bench/nfs.py, as root): kept as it was.
    kept7, rows7 = case7_kept()
    lines += kept7
    r6 = c6["dotlock"][0] / max(c6["dotlockfile"][0], 0.001)
    r6b = c6busy["dotlock"][0] / max(c6busy["dotlockfile"][0], 0.001)
    lines += [
        "",
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
        f"| case 1: lock + unlock, dotlock / dotlockfile ≤ 0.95 | {r1:.2f} | {verdict(r1 <= 0.95)} |",
        f"| case 1u: unlock alone, dotlock -u / dotlockfile -u ≤ 1.0 | {r1u:.2f} | {verdict(r1u <= 1.0)} |",
        f"| case 2: dotlock / dotlockfile ≤ 1.05 | {r2:.2f} | {verdict(r2 <= 1.05)} |",
        f"| case 2: command mode, dotlock / flock ≤ 1.0 | {r2f:.2f} | {verdict(r2f <= 1.0)} |",
        f"| case 3: dotlock median hand-over ≤ 5 ms | {h3:.1f} ms | {verdict(h3 <= 5)} |",
        f"| case 4: contended, median dotlock / median flock ≤ 1.0 | {r4:.2f} | {verdict(r4 <= 1.0)} |",
        f"| case 4b: slowest loop / median ≤ 2 | {loop_spread:.2f} | {verdict(loop_spread <= 2)} |",
        f"| case 5: dotlock / dotlockfile max RSS ≤ 1.5 | {r5:.2f} | {verdict(r5 <= 1.5)} |",
        f"| case 6: dotlock / dotlockfile idle CPU ≤ 1 | {r6:.2f} | {verdict(r6 <= 1)} |",
        f"| case 6b: busy directory, dotlock / dotlockfile idle CPU ≤ 1 | {r6b:.2f} | {verdict(r6b <= 1)} |",
        *rows7,
        "",
    ]
    notes = os.path.join(ROOT, "bench", "NOTES.md")
    if os.path.exists(notes):
        lines += open(notes).read().rstrip("\n").split("\n") + [""]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    print(f"bench: wrote {OUT}", file=sys.stderr)


def case7_kept():
    """Case 7's section and target rows from the BENCHMARKS.md there is
    (bench/nfs.py writes them)."""
    path = os.path.join(ROOT, "BENCHMARKS.md")
    text = open(path).read() if os.path.exists(path) else ""
    start = text.find("## 7. ")
    if start < 0:
        return [], []
    end = text.find("\n## ", start + 1)
    section = ["", *text[start:end].rstrip("\n").split("\n")]
    rows = [l for l in text.split("\n") if l.startswith("| case 7")]
    return section, rows


def replace_section(heading, section, row_prefix, rows):
    """Put `section` in BENCHMARKS.md in place of the one starting with
    `heading` (or before the targets), and `rows` in place of the target
    rows starting with `row_prefix` (or after the last)."""
    path = os.path.join(ROOT, "BENCHMARKS.md")
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    start = text.find(heading)
    if start < 0:
        start = text.find("## Targets")
        text = text[:start] + section + "\n\n" + text[start:]
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + "\n" + text[end:]
    lines = text.split("\n")
    old = [i for i, l in enumerate(lines) if l.startswith(row_prefix)]
    lines = [l for l in lines if not l.startswith(row_prefix)]
    at = old[0] if old else 1 + max(i for i, l in enumerate(lines) if l.startswith("| case "))
    lines[at:at] = rows
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main_idle():
    """Case 6 alone: its section (and target row) in BENCHMARKS.md rewritten."""
    tools = {"dotlock": build_dotlock(), "dotlockfile": need("dotlockfile")}
    d = tempfile.mkdtemp(prefix="lockutils-bench-")
    c6 = case6(tools, d)
    shutil.rmtree(d)
    section = "\n".join(case6_lines(c6)).strip("\n")
    r6 = c6["dotlock"][0] / max(c6["dotlockfile"][0], 0.001)
    row = f"| case 6: dotlock / dotlockfile idle CPU ≤ 1 | {r6:.2f} | {'met' if r6 <= 1 else '**missed**'} |"
    replace_section("## 6. Idle waiters", section, "| case 6:", [row])
    print(section)


if __name__ == "__main__":
    main()
