#!/usr/bin/env python3
"""Hand-over across machines on the NFS test bed (BENCHMARKS.md, case 7):
a holder on client A, a waiter on client B, each under a host name of its
own, for dotlock, lockdir, liblockfile's dotlockfile, procmail's lockfile
and a plain mkdir loop, in one run; and what one waiter costs the server
over a long wait. Rewrites case 7 of BENCHMARKS.md (and its target rows).

    python3 bench/nfs.py                  # as root: the bed needs it
    BENCH_NFS_HANDOVERS=20 BENCH_NFS_WAIT=60 BENCH_NFS_SEED=1 python3 bench/nfs.py
    BENCH_SHORT=1 python3 bench/nfs.py    # a few of each, written to
                                          # target/bench/, never BENCHMARKS.md

Needs: nfs-ganesha nfs-ganesha-vfs rpcbind (the bed, see README), liblockfile-bin
(dotlockfile), procmail (lockfile), util-linux (unshare).
"""

import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import ROOT, SHORT, median_ms, need, p95_ms, replace_section, table  # noqa: E402

HANDOVERS = int(os.environ.get("BENCH_NFS_HANDOVERS", "2" if SHORT else "20"))
WAIT = float(os.environ.get("BENCH_NFS_WAIT", "5" if SHORT else "60"))
# Uncontended lock+unlock cycles on client B, for the calls they cost.
CYCLES = int(os.environ.get("BENCH_NFS_CYCLES", "3" if SHORT else "20"))
SEED = int(os.environ.get("BENCH_NFS_SEED", str(random.randrange(1 << 16))))
BED = os.path.join(ROOT, "target", "nfsbed-bench")
TITLE = "7. Hand-over across machines on NFS"


def bed(*args):
    env = dict(os.environ, BED_DIR=BED)
    subprocess.run([os.path.join(ROOT, "nfsbed", "bed.sh"), *args], env=env, check=True,
                   stdin=subprocess.DEVNULL)


def stats(client):
    """Client `client`'s counts so far (its stats file, rewritten every
    100 ms: wait that long first)."""
    time.sleep(0.15)
    with open(os.path.join(BED, f"stats-{client}")) as f:
        return dict(w.split("=", 1) for w in f.read().split())


def calls(client):
    """The calls client `client` has sent the server so far."""
    return int(stats(client)["calls"])


def procedures(client):
    """The calls client `client` has sent so far, by procedure."""
    return {k[5:]: int(v) for k, v in stats(client).items() if k.startswith("proc_")}


def minus(after, before):
    return {p: n - before.get(p, 0) for p, n in after.items() if n - before.get(p, 0)}


def on_host(client, script, **kw):
    """`sh -c script` on client `client`'s mount, under host name host-CLIENT."""
    return subprocess.Popen(
        ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec sh -c "$1"', f"host-{client}", script],
        cwd=os.path.join(BED, client), stdin=subprocess.DEVNULL, **kw)


def left():
    return sorted(os.listdir(os.path.join(BED, "export")))


def build():
    """The release programs, as `make` builds them."""
    out = subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--bins", "--message-format=json"],
        cwd=ROOT, check=True, stdout=subprocess.PIPE).stdout.decode()
    exes = {}
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            exes[msg["target"]["name"]] = msg["executable"]
    return exes


def tools(exes):
    """Each tool: how a holder on A takes the lock, says `locked` and keeps
    it for H seconds, then releases and exits; and how a waiter on B waits
    for it with the tool's default schedule, prints the time it got it
    (`date +%s%N`) and releases."""
    dotlock, lockdir = exes["dotlock"], exes["lockdir"]
    dotlockfile, lockfile = need("dotlockfile"), need("lockfile")
    held = 'sh -c "echo locked; sleep {h}"'
    got = 'sh -c "date +%s%N"'
    return {
        "dotlock": (f'"{dotlock}" L {held}', f'"{dotlock}" -r -1 L {got}'),
        "lockdir": (f'"{lockdir}" L {held}', f'"{lockdir}" -r -1 L {got}'),
        "dotlockfile": (f'"{dotlockfile}" -l L {held}', f'"{dotlockfile}" -l -r -1 L {got}'),
        "lockfile": (f'"{lockfile}" L && echo locked && sleep {{h}} && rm -f L',
                     f'"{lockfile}" L && date +%s%N && rm -f L'),
        "mkdir loop": ("mkdir L && echo locked && sleep {h} && rmdir L",
                       "until mkdir L 2>/dev/null; do sleep 1; done; date +%s%N; rmdir L"),
    }


def cycle_calls(exes):
    """Calls of one uncontended lock+unlock on client B, by procedure:
    CYCLES cycles in a shell loop, less the same loop running `true`."""
    dotlock, lockdir = exes["dotlock"], exes["lockdir"]
    cycles = {
        "dotlock": f'"{dotlock}" L && "{dotlock}" -u L',
        "lockdir": f'"{lockdir}" --no-keeper L && "{lockdir}" -u L',
        "dotlockfile": f'"{need("dotlockfile")}" L && "{need("dotlockfile")}" -u L',
        "lockfile": f'"{need("lockfile")}" L && rm -f L',
        "(the loop alone)": "true && true",
    }
    per = {}
    for name, cycle in cycles.items():
        script = f"i=0; while [ $i -lt {CYCLES} ]; do {cycle} || exit 1; i=$((i+1)); done"
        before = procedures("b")
        if on_host("b", script).wait() != 0:
            sys.exit(f"bench: the cycle failed: {cycle}")
        per[name] = {p: n / CYCLES for p, n in minus(procedures("b"), before).items()}
        if left():
            sys.exit(f"bench: left in the export: {left()}")
    loop = per.pop("(the loop alone)")
    return {name: {p: n - loop.get(p, 0) for p, n in c.items() if n - loop.get(p, 0) > 0}
            for name, c in per.items()}


def hand_over(holder, waiter, hold):
    """One hand-over: seconds from A's release to B's acquisition, B's
    calls to the server while it waited (by procedure), and how long it
    waited."""
    a = on_host("a", holder.format(h=f"{hold:.3f}"), stdout=subprocess.PIPE, text=True)
    if a.stdout.readline().strip() != "locked":
        sys.exit(f"bench: the holder did not lock: {holder}")
    c0, t0 = procedures("b"), time.monotonic()
    b = on_host("b", waiter, stdout=subprocess.PIPE, text=True)
    if a.wait() != 0:
        sys.exit(f"bench: the holder failed: {holder}")
    released = time.time_ns()
    out, _ = b.communicate()
    waited = time.monotonic() - t0
    if b.returncode != 0:
        sys.exit(f"bench: the waiter failed: {waiter}")
    got = int(out.strip().splitlines()[-1])
    if left():
        sys.exit(f"bench: left in the export: {left()}")
    return (got - released) / 1e9, minus(procedures("b"), c0), waited


def long_wait(exes, name):
    """One waiter on B for WAIT seconds on a lock A holds: its calls to
    the server per second, and its CPU time (from wait4(2))."""
    tool = exes[name]
    a = on_host("a", f'"{tool}" L sh -c "echo locked; sleep {WAIT}"', stdout=subprocess.PIPE, text=True)
    if a.stdout.readline().strip() != "locked":
        sys.exit(f"bench: {name} did not lock")
    c0, t0 = calls("b"), time.monotonic()
    b = on_host("b", f'exec "{tool}" -r -1 L true')
    a.wait()
    # The wait ends at A's release (B's acquisition and release are not
    # counted: its stats are read first).
    n, waited = calls("b") - c0, time.monotonic() - t0
    _, status, ru = os.wait4(b.pid, 0)
    b.returncode = os.waitstatus_to_exitcode(status)
    if b.returncode != 0:
        sys.exit(f"bench: the {name} waiter failed")
    return n / waited, ru.ru_utime + ru.ru_stime, waited


def main():
    if os.geteuid() != 0:
        sys.exit("bench: the NFS bed needs root")
    need("unshare")
    exes = build()
    kinds = tools(exes)
    rng = random.Random(SEED)
    holds = [rng.uniform(1, 4) for _ in range(HANDOVERS)]
    bed("stop")
    bed("start")
    try:
        for name in left():
            sys.exit(f"bench: the export is not empty: {name}")
        print(f"  {CYCLES} uncontended cycles of each tool on client B ...", file=sys.stderr)
        cycles = cycle_calls(exes)
        lat = {name: [] for name in kinds}
        cost = {name: [0, 0.0] for name in kinds}
        by_proc = {name: {} for name in kinds}
        names = list(kinds)
        for i, hold in enumerate(holds):
            # The tools take turns, in a new order each round.
            rng.shuffle(names)
            for name in names:
                after, n, waited = hand_over(*kinds[name], hold)
                lat[name].append(after)
                cost[name][0] += sum(n.values())
                cost[name][1] += waited
                for p, k in n.items():
                    by_proc[name][p] = by_proc[name].get(p, 0) + k
            print(f"  round {i + 1}/{HANDOVERS}: " +
                  ", ".join(f"{n} {lat[n][-1]:.2f} s" for n in kinds), file=sys.stderr)
        waits = {}
        for name in ["dotlock", "lockdir"]:
            print(f"  {name}: one waiter for {WAIT:.0f} s ...", file=sys.stderr)
            waits[name] = long_wait(exes, name)
    finally:
        bed("stop")
    update(section(lat, cost, waits) + procedure_tables(cycles, by_proc, lat),
           targets(lat, waits, cycles))


def procedure_tables(cycles, by_proc, lat):
    """Client B's calls by procedure: per uncontended cycle, per hand-over."""
    def rows(counts, per):
        procs = sorted({p for c in counts.values() for p in c})
        body = {n: [f"{sum(c.values()) / per(n):.1f}"] + [f"{c.get(p, 0) / per(n):.1f}" for p in procs]
                for n, c in counts.items()}
        return ["total", *[p.upper() for p in procs]], body
    cols, body = rows(cycles, lambda n: 1)
    lines = table(
        f"7a. NFS calls of one uncontended lock + unlock on client B, by procedure ({CYCLES} cycles)",
        cols, body,
        intro=["Acquisition and release alone (no waiting, so no probes), less what the shell",
               "loop itself costs: `TOOL L && TOOL -u L` (lockdir `--no-keeper`; lockfile's",
               "unlock is `rm -f`). Counted by client B, procedure by procedure."], level=3)
    cols, body = rows(by_proc, lambda n: len(lat[n]))
    lines += table(
        "7b. Client B's NFS calls per hand-over of case 7, by procedure",
        cols, body,
        intro=["The waiter's whole life: its attempts, its release probes (dotlock, lockdir:",
               "LOOKUP and GETATTR), its acquisition and release."], level=3)
    return lines


def section(lat, cost, waits):
    lines = table(
        f"{TITLE} ({HANDOVERS} hand-overs, holds of 1–4 s, default schedules)",
        ["median", "95th percentile", "B's calls per hand-over", "B's mean wait"],
        {n: [f"{median_ms(s) / 1000:.2f} s", f"{p95_ms(s) / 1000:.2f} s",
             f"{cost[n][0] / len(s):.0f}", f"{cost[n][1] / len(s):.1f} s"] for n, s in lat.items()},
        intro=[
            "On the NFS test bed (README, \"The NFS test bed\"): nfs-ganesha 4.3, NFSv3 on",
            "loopback, two `nfsbed-client` FUSE clients with a 3 s attribute and name cache,",
            "release builds. A holder on client A (host name `host-a`) keeps the lock for a",
            "random 1–4 s (the same holds for every tool, seed "
            f"{SEED}), then releases it; a waiter on",
            "client B (`host-b`), started once A holds it, waits with the tool's default",
            "schedule. Time from A's release (its process ended) to B's acquisition (`date` in",
            "its command). Calls: what client B sent the server, counted by the client, from",
            "the waiter's start to its end (its acquisition and release included). The mkdir",
            "loop is `until mkdir L; do sleep 1; done`.",
            "Regenerate with `python3 bench/nfs.py` (as root), which rewrites this section.",
        ],
    )
    lines += [
        "",
        f"One waiter on client B for {WAIT:.0f} s on a lock held on client A:",
        "",
        "| tool | calls per second | CPU time |",
        "|---|---|---|",
    ]
    lines += [f"| `{n}` | {r:.2f} | {cpu:.3f} s |" for n, (r, cpu, _) in waits.items()]
    return lines


def targets(lat, waits, cycles):
    verdict = lambda ok: "met" if ok else "**missed**"
    d = lat["dotlock"]
    med, p95 = median_ms(d) / 1000, p95_ms(d) / 1000
    rate, cpu, _ = waits["dotlock"]
    ours, theirs = sum(cycles["dotlock"].values()), sum(cycles["dotlockfile"].values())
    return [
        f"| case 7: dotlock median hand-over on NFS ≤ 0.5 s | {med:.2f} s | {verdict(med <= 0.5)} |",
        f"| case 7: dotlock p95 hand-over on NFS ≤ 1.5 s | {p95:.2f} s | {verdict(p95 <= 1.5)} |",
        f"| case 7: one dotlock waiter ≤ 2 NFS calls/s over {WAIT:.0f} s | {rate:.2f} | {verdict(rate <= 2)} |",
        f"| case 7: one dotlock waiter CPU ≤ 0.1 s over {WAIT:.0f} s | {cpu:.3f} s | {verdict(cpu <= 0.1)} |",
        f"| case 7a: dotlock NFS calls per uncontended cycle ≤ dotlockfile's | {ours:.1f} vs {theirs:.1f} "
        f"| {verdict(ours <= theirs)} |",
    ]


def update(lines, rows):
    """Case 7's section and target rows in BENCHMARKS.md, put in place of
    the old ones (or before the targets)."""
    body = "\n".join(lines).strip("\n")
    if SHORT:
        out = os.path.join(ROOT, "target", "bench", "nfs.md")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            f.write(body + "\n\n" + "\n".join(rows) + "\n")
        print(f"bench: wrote {out}", file=sys.stderr)
    else:
        replace_section(f"## {TITLE}", body, "| case 7", rows)
    print(body + "\n\n" + "\n".join(rows))

if __name__ == "__main__":
    main()
