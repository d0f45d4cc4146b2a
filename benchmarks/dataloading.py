"""Data loading alone: clips/s of vidrec's pipeline against a naive baseline, in the same run.

    python benchmarks/dataloading.py --data runs/demo/data [--clips 200] [--workers 0 2]

Baseline: decode every frame of the video at native size, then pick the sampled frames and
resize (what a script that reads whole videos does). vidrec: decode only up to the sampled
frames, straight to the reduced size (FFmpeg's scaler), through ``VideoClipDataset``.
Prints clips/s for each and the ratio vidrec / baseline.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from vidrec.config import load_config
from vidrec.data.build import build_dataset, build_loader, load_dataset
from vidrec.models.base import InputSpec
from vidrec.presets import preset_path


def naive_clip(path: Path, n_frames: int, size: int) -> torch.Tensor:
    import av

    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]  # every frame, native size
    idx = np.linspace(0, len(frames) - 1, n_frames).round().astype(int)
    x = torch.from_numpy(np.stack([frames[i] for i in idx])).permute(0, 3, 1, 2).float()
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="a `vidrec synth` folder")
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(preset_path("demo"), overrides=[f"data.root={args.data}", "data.num_workers=0"])
    rs = load_dataset(cfg)
    records = rs.subset("train")[: args.clips]
    spec = InputSpec()
    size = cfg.data.image_size or spec.image_size
    frames = cfg.data.num_frames or spec.num_frames

    t0 = time.perf_counter()
    for r in records:
        naive_clip(r.path, frames, size)
    base = len(records) / (time.perf_counter() - t0)
    print(f"baseline (decode all frames at native size, then resize): {base:7.1f} clips/s")

    for w in args.workers:
        cfg_w = load_config(preset_path("demo"), overrides=[f"data.root={args.data}", f"data.num_workers={w}"])
        ds = build_dataset(cfg_w, records, rs.classes, spec, train=True)
        loader = build_loader(cfg_w, ds, train=True)
        t0 = time.perf_counter()
        n = sum(b["video"].shape[0] for b in loader)
        rate = n / (time.perf_counter() - t0)
        print(f"vidrec VideoClipDataset, {w} workers (incl. start-up):      {rate:7.1f} clips/s  ratio {rate / base:5.2f}x")


if __name__ == "__main__":
    main()
