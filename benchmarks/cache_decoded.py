"""What ``data.cache_decoded`` saves: evaluation epochs read from memory instead of decoding again.

Two evaluation loaders over the same subset (3 views per video, the demo's clip settings),
``--workers`` persistent DataLoader workers each: one without the cache, one with it. Both run a
first epoch (the cached one fills its cache), then later epochs alternate between the two, so a
busy shared machine slows both alike; the per-epoch ratio is the number to read. Only data loading
is timed (no model): that is what the cache removes.

    python benchmarks/cache_decoded.py --synthetic-root runs/synthetic --epochs 3 --workers 2 \
        --json benchmarks/results/cache_decoded.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from vidrec.config import load_config
from vidrec.data.build import build_dataset, build_loader, load_recordset
from vidrec.models.base import InputSpec
from vidrec.utils.device import cpu_model


def epoch_seconds(loader) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    n = sum(int(b["video"].shape[0]) for b in loader)
    return time.perf_counter() - t0, n


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--synthetic-root",
        type=Path,
        default=Path("runs/synthetic"),
        help="vidrec synth --out DIR (the demo's dataset)",
    )
    ap.add_argument("--subset", default="val")
    ap.add_argument("--views", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3, help="epochs after the first, per loader")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--budget", default="2GiB")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    spec = InputSpec(16, 112, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # cnn_rnn at the demo's 16 × 112²
    loaders = {}
    for name, budget in (("off", "false"), ("on", args.budget)):
        sets = [
            f"data.root={args.synthetic_root}",
            "data.dataset=synthetic",
            f"data.cache_decoded={budget}",
            "data.num_frames=16",
            "data.image_size=112",
        ]
        cfg = load_config(overrides=sets, environ={})
        rs = load_recordset(cfg)
        ds = build_dataset(cfg, rs.subset(args.subset), rs.classes, spec, train=False, views=args.views, recordset=rs)
        loaders[name] = build_loader(cfg, ds, train=False, batch_size=args.batch_size, workers=args.workers)
    first = {name: epoch_seconds(loader)[0] for name, loader in loaders.items()}
    later: dict[str, list[float]] = {"off": [], "on": []}
    clips = 0
    for _ in range(args.epochs):
        for name in ("off", "on"):  # interleaved: both see the same machine load
            s, clips = epoch_seconds(loaders[name])
            later[name].append(s)
    ratios = [a / b for a, b in zip(later["off"], later["on"])]
    out = {
        "cpu": cpu_model(),
        "workers": args.workers,
        "views": args.views,
        "clips_per_epoch": clips,
        "budget": args.budget,
        "first_epoch_s": first,
        "later_epochs_s": later,
        "median_later_s": {k: statistics.median(v) for k, v in later.items()},
        "speedup_per_epoch": ratios,
        "median_speedup": statistics.median(ratios),
    }
    print(json.dumps(out, indent=2))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
