"""Run every benchmark in ``benchmarks/`` with the commands recorded in docs/ (``make bench``).

Each script measures its own baseline in the same run and prints ratios against it; this runner only
calls them one after another (one at a time: timings on a shared 2-core machine mean nothing when two
benchmarks compete) and stops at the first failure. The full set takes about two hours on 2 cores, most
of it ``accuracy.py``; ``--quick`` runs each script at tiny sizes to check that they work, without writing
docs/ (3.5 min here with another job on the cores, most of it one epoch of ``frame_avg``).

    .venv/bin/python benchmarks/run_all.py                 # everything; rewrites the table in docs/models.md
    .venv/bin/python benchmarks/run_all.py --quick
    .venv/bin/python benchmarks/run_all.py --only dataloading models
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "runs" / "synthetic"  # `vidrec synth` defaults: the demo's dataset
RESULTS = ROOT / "benchmarks" / "results"


def plan(quick: bool) -> dict[str, list[str]]:
    """Benchmark name -> its arguments (the ones docs/ quotes)."""
    if quick:
        return {
            "startup": ["--repeats", "1"],
            "dataloading": ["--synthetic-root", str(DATA), "--reps", "1", "--per-kind", "2", "--synthetic", "16"],
            "models": ["--quick", "--repeats", "1", "--train-steps", "1", "--no-write"],
            "embed": ["--arch", "tiny", "--videos", "2", "--frames", "8", "--merge", "2-2", "--repeats", "1",
                      "--workers", "0"],
            "accuracy": ["--models", "frame_avg", "--epochs", "1", "--data", str(DATA),
                         "--out", str(ROOT / "runs" / "accuracy_quick"), "--force"],
            "onnx_latency": ["--models", "lsvit_tiny", "--repeats", "2"],
            "cache_decoded": ["--synthetic-root", str(DATA), "--epochs", "1"],
        }  # fmt: skip
    acc = ROOT / "runs" / "accuracy" / "accuracy.json"  # an earlier accuracy run fills the table's last column
    return {
        "startup": ["--repeats", "5", "--json", str(RESULTS / "startup.json")],
        "dataloading": ["--synthetic-root", str(DATA), "--json", str(RESULTS / "dataloading.json")],
        "models": ["--repeats", "2", "--train-steps", "2", "--batch-size", "2", "--json", str(RESULTS / "models.json"),
                   *(["--accuracy", str(acc)] if acc.exists() else [])],
        "embed": ["--arch", "b32", "--videos", "8", "--frames", "12", "--merge", "2-2-2", "--threads", "1",
                  "--workers", "1", "--repeats", "2"],
        "accuracy": ["--data", str(DATA), "--out", str(ROOT / "runs" / "accuracy")],
        "onnx_latency": ["--repeats", "20", "--threads", "1", "--json", str(RESULTS / "onnx_latency.json")],
        "cache_decoded": ["--synthetic-root", str(DATA), "--epochs", "3", "--workers", "2",
                          "--json", str(RESULTS / "cache_decoded.json")],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="tiny sizes: check that every benchmark runs (docs untouched)")
    ap.add_argument("--only", nargs="+", choices=list(plan(False)), help="only these benchmarks")
    args = ap.parse_args(argv)

    print(f"== vidrec synth --out {DATA}", flush=True)  # a no-op when the dataset is already complete
    subprocess.run([sys.executable, "-m", "vidrec", "synth", "--out", str(DATA), "--quiet"], check=True, cwd=ROOT)
    RESULTS.mkdir(parents=True, exist_ok=True)
    took: dict[str, float] = {}
    for name, extra in plan(args.quick).items():
        if args.only and name not in args.only:
            continue
        cmd = [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *extra]
        print(f"\n== {' '.join(['python', f'benchmarks/{name}.py', *extra])}", flush=True)
        start = time.perf_counter()
        rc = subprocess.run(cmd, cwd=ROOT, check=False).returncode
        took[name] = time.perf_counter() - start
        if rc != 0:
            print(f"\n{name} failed (exit {rc}); stopping", file=sys.stderr)
            return rc
    if not args.quick and (not args.only or {"models", "accuracy"} <= set(args.only)):
        acc = ROOT / "runs" / "accuracy" / "accuracy.json"
        cmd = [
            sys.executable,
            str(ROOT / "benchmarks" / "models.py"),
            "--rows",
            str(RESULTS / "models.json"),
            "--accuracy",
            str(acc),
        ]
        subprocess.run(cmd, cwd=ROOT, check=True)  # the table with both halves
    print("\n" + "  ".join(f"{n} {s:.0f} s" for n, s in took.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
