"""CLI start-up: `vidrec config show` and `vidrec data show` on the full UCF101 tree, against the bare interpreter.

    python benchmarks/startup.py [--repeats 5] [--before DIR] [--json benchmarks/results/startup.json]

Lays out the complete UCF101 tree from the official split files (13,320 videos, each a hard link
to one small clip; tests/full_size.py) in a temporary folder, then runs each command in a fresh
interpreter, interleaved, ``--repeats`` times: the bare interpreter (``python -c pass``, the
baseline), ``import torch`` (what a light verb must not pay), ``vidrec --help``, ``vidrec config
show`` and ``vidrec data show`` on the tree. ``--before DIR`` also runs the two verbs from another
checkout (e.g. ``git worktree add /tmp/before <rev>``), in the same rounds. Prints the median wall
time, CPU time (user + sys) and peak memory of each, and each median's ratio to the baseline's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vidrec.utils.device import cpu_model

ROOT = Path(__file__).resolve().parents[1]
# Written by a child process, so that this one stays small: a forked child's peak memory counts its parent's.
_LAYOUT = """
import sys
from pathlib import Path
from tests.fixtures_datasets import tiny_video
from tests.full_size import layout_ucf101
base = Path(sys.argv[1])
layout_ucf101(base / "ucf101", tiny_video(base / "clip.avi", frames=4, size=(16, 16)))
"""


def measure(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MB) of one run of ``cmd``; it must succeed."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tempfile.gettempdir())
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err[-1000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="rounds; every command runs once per round")
    ap.add_argument("--before", type=Path, help="another checkout whose `config show` / `data show` to time alongside")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)

    py = sys.executable
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="vidrec-startup-") as tmp:
        base = Path(tmp)
        subprocess.run([py, "-c", _LAYOUT, str(base)], env=env, cwd=ROOT, check=True)
        ucf = base / "ucf101"
        # the checkout before the root-name fix reads a root called ucf101 as the video folder: give it another name
        (base / "root").symlink_to(ucf)
        show = ["data", "show", "--set", "data.dataset=ucf101"]
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            "python -c pass (baseline)": ([py, "-c", "pass"], env),
            "python -c 'import torch'": ([py, "-c", "import torch"], env),
            "vidrec --help": ([py, "-m", "vidrec", "--help"], env),
            "vidrec config show": ([py, "-m", "vidrec", "config", "show"], env),
            "vidrec data show (UCF101, 13,320 videos)": ([py, "-m", "vidrec", *show, "--set", f"data.root={ucf}"], env),
        }
        if args.before:
            old = {**os.environ, "PYTHONPATH": str(args.before.resolve())}
            commands["before: vidrec config show"] = ([py, "-m", "vidrec", "config", "show"], old)
            commands["before: vidrec data show (UCF101)"] = (
                [py, "-m", "vidrec", *show, "--set", f"data.root={base / 'root'}"],
                old,
            )
        runs: dict[str, list[tuple[float, float, float]]] = {k: [] for k in commands}
        for r in range(args.repeats):
            for name, (cmd, e) in commands.items():
                runs[name].append(measure(cmd, e))
            print(f"round {r + 1}/{args.repeats} done", file=sys.stderr, flush=True)

    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in runs.items()}
    base_wall = med["python -c pass (baseline)"][0]
    rows = []
    print(f"\n{'command':<44}{'wall s':>9}{'CPU s':>9}{'RSS MB':>9}{'wall / baseline':>17}")
    for name, (wall, cpu, rss) in med.items():
        rows.append(
            {
                "command": name,
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "rss_mb": round(rss, 1),
                "wall_ratio": round(wall / base_wall, 2),
            }
        )
        print(f"{name:<44}{wall:>9.2f}{cpu:>9.2f}{rss:>9.0f}{wall / base_wall:>16.1f}x")
    if args.before:
        for verb, before in (
            ("vidrec config show", "before: vidrec config show"),
            ("vidrec data show (UCF101, 13,320 videos)", "before: vidrec data show (UCF101)"),
        ):
            print(f"{verb}: {med[before][0] / med[verb][0]:.1f}x faster than before (wall, medians of the same rounds)")
    footer = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "repeats": args.repeats,
        "date": time.strftime("%Y-%m-%d"),
    }
    print(f"\n{footer}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, **footer}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
