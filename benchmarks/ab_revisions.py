"""Run one benchmark script on two checkouts of biomlff, alternating, in one session.

The machine is shared and noisy, so "before vs after" numbers are only comparable when measured
side by side: this runs ``SCRIPT ARGS`` from each checkout (its own ``benchmarks/SCRIPT`` with
``PYTHONPATH=<checkout>/src``) in rounds, alternating which goes first, and keeps every output::

    git worktree add --detach /tmp/before <rev>
    python benchmarks/ab_revisions.py --before /tmp/before --after . --rounds 2 \\
        -- md_speed.py --sizes 192 1536 --steps 10 --repeats 5

Outputs go to ``--out`` (``benchmarks/out/ab``) as ``<script>.<round>.<before|after>.txt``; the
tables are printed as they come. Read the medians of each table across rounds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path


def run_one(tree: Path, script: str, args: list[str], python: str) -> tuple[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    env.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [python, str(tree / "benchmarks" / script), *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    out = proc.stdout + (f"\n[stderr tail]\n{proc.stderr[-2000:]}" if proc.returncode else "")
    return out, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, type=Path, help="checkout measured as 'before'")
    ap.add_argument("--after", required=True, type=Path, help="checkout measured as 'after'")
    ap.add_argument("--rounds", type=int, default=2, help="rounds; each runs both checkouts once")
    ap.add_argument("--python", default=sys.executable, help="interpreter with biomlff's dependencies")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/ab"))
    ap.add_argument("script", help="benchmark file name in benchmarks/ (e.g. md_speed.py)")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="its arguments (after --)")
    a = ap.parse_args()
    args = a.args[1:] if a.args[:1] == ["--"] else a.args
    a.out.mkdir(parents=True, exist_ok=True)
    trees = {"before": a.before.resolve(), "after": a.after.resolve()}
    for name, tree in trees.items():
        if not (tree / "benchmarks" / a.script).exists():
            ap.error(f"{tree}/benchmarks/{a.script} does not exist ({name})")
        rev = subprocess.run(
            ["git", "-C", str(tree), "log", "-1", "--format=%h %s"], capture_output=True, text=True
        ).stdout.strip()
        print(f"{name}: {tree} ({rev[:90]})", flush=True)
    for r in range(a.rounds):
        order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
        for name in order:
            out, sec = run_one(trees[name], a.script, args, a.python)
            path = a.out / f"{Path(a.script).stem}.{r}.{name}.txt"
            path.write_text(out)
            print(f"\n===== round {r} · {name} · {sec:.0f} s · {path}\n{out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
