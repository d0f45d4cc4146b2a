"""Embedding benchmark: ``vidrec embed`` videos/s with temporal token merging off and on (same run),
how close merged embeddings stay to unmerged ones, and the encoder's own speed-up.

Everything is built here, offline: real videos written with PyAV, and a CLIP video encoder saved
with ``save_pretrained`` (``--arch b32``: ViT-B/32 shapes, random weights; ``tiny``: the test
model) or any CLIP from_pretrained directory (``--model DIR``, e.g. a real ViT-B/32 copy).

    .venv/bin/python benchmarks/embed.py                       # ViT-B/32 shapes, 12 frames, 8 videos
    .venv/bin/python benchmarks/embed.py --arch tiny --videos 16 --frames 8 --merge 2-2
    .venv/bin/python benchmarks/embed.py --model /models/clip-vit-base-patch32 --merge 2-2-2

Measured per setting (merge off, then on): end-to-end ``extract`` videos/s (decode + encode +
LanceDB writes, ``--workers`` decoding processes, after a warm-up run on other files), and the
encoder alone (median of ``--repeats`` forward passes of a ``--batch-size`` batch). Cosine:
merged vs unmerged video embedding of the same videos (random weights say little about a
trained model's quality; pass ``--model`` for a real one). ``--recall`` also trains the tiny
CLIP contrastively on synthetic captions and reports R@1 on the training pairs and held out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidrec.utils.device import cpu_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_videos(folder: Path, n: int, *, frames: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    from vidrec.video.encode import write_video

    rng = np.random.default_rng(seed)
    out = []
    h, w = size
    for i in range(n):
        arr = rng.integers(0, 60, (frames, h, w, 3), dtype=np.uint8)
        colour = rng.integers(80, 255, 3)
        for t in range(frames):
            x = int((w - w // 4) * t / max(frames - 1, 1))
            arr[t, h // 3 : h // 3 + h // 4, x : x + w // 4] = colour
        out.append(write_video(folder / f"v{i:03d}.mp4", arr, fps=24))
    return out


def save_clip(arch: str, folder: Path) -> Path:
    from transformers import CLIPConfig, CLIPModel

    from vidrec.models.video_clip import tiny_clip_config

    torch.manual_seed(0)
    cfg = tiny_clip_config() if arch == "tiny" else CLIPConfig()
    CLIPModel(cfg).save_pretrained(folder)
    return folder


def time_encoder(encoder: Any, batch: torch.Tensor, repeats: int) -> float:
    times = []
    encoder.encode(batch)  # warm-up
    for _ in range(repeats):
        t0 = time.perf_counter()
        encoder.encode(batch)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from vidrec.embed import Store, extract
    from vidrec.embed.encoders import load_encoder

    model = Path(args.model) if args.model else save_clip(args.arch, work / f"clip-{args.arch}")
    vdir, warm = work / "videos", work / "warmup"
    write_videos(vdir, args.videos, frames=args.video_frames, size=(240, 320))
    write_videos(warm, 2, frames=args.video_frames, size=(240, 320), seed=1)
    result: dict[str, Any] = {
        "model": str(args.model or f"random {args.arch}"),
        "frames": args.frames,
        "videos": args.videos,
        "video": f"{args.video_frames} frames 320x240 h264",
        "workers": args.workers,
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "machine": f"{cpu_model()}, {torch.get_num_threads()} torch threads",
    }
    vecs: dict[str, dict[str, np.ndarray]] = {}
    for name, merge in (("merge_off", "off"), ("merge_on", args.merge)):
        enc = load_encoder(model, num_frames=args.frames, merge=merge, device="cpu")
        extract(warm, work / f"warm-{name}", encoder=enc, workers=0, batch_size=args.batch_size)  # warm-up
        s = extract(vdir, work / f"store-{name}", encoder=enc, workers=args.workers, batch_size=args.batch_size)
        tab = Store(work / f"store-{name}").videos()
        vecs[name] = {p: np.asarray(v, np.float32) for p, v in zip(tab["path"].to_pylist(), tab["vector"].to_pylist())}
        size = enc.image_size
        batch = torch.randint(0, 255, (args.batch_size, args.frames, size, size, 3), dtype=torch.uint8)
        enc_s = time_encoder(enc, batch, args.repeats)
        result[name] = {
            "schedule": merge,
            "layers": enc.describe().get("merge_layers"),
            "videos_per_s": round(s.videos_per_s, 3),
            "seconds": round(s.seconds, 2),
            "failed": s.failed,
            "encoder_videos_per_s": round(args.batch_size / enc_s, 3),
            "encoder_batch_s": round(enc_s, 4),
        }
    cos = [float(vecs["merge_on"][p] @ vecs["merge_off"][p]) for p in vecs["merge_off"]]
    result["speedup_end_to_end"] = round(
        result["merge_on"]["videos_per_s"] / max(result["merge_off"]["videos_per_s"], 1e-9), 3
    )
    result["speedup_encoder"] = round(result["merge_off"]["encoder_batch_s"] / result["merge_on"]["encoder_batch_s"], 3)
    result["cosine_merged_vs_plain"] = {"mean": round(float(np.mean(cos)), 4), "min": round(float(np.min(cos)), 4)}
    return result


def recall(work: Path, *, steps: int, per_class: int = 60, batch: int = 64) -> dict[str, Any]:
    """Train the tiny CLIP contrastively on synthetic captions (fixed centred clips, in memory);
    R@1 on the training pairs and on the held-out validation videos, after exactly ``steps`` steps."""
    from vidrec.config import load_config
    from vidrec.data.build import load_recordset
    from vidrec.data.synthetic import SynthSpec, generate
    from vidrec.engine.retrieval import build_retrieval_datasets, evaluate_retrieval, retrieval_step
    from vidrec.models.registry import create_model

    root = work / "synth"
    spec = SynthSpec(
        videos_per_class=per_class, val_per_class=4, test_per_class=0, size=48, num_frames=12, layouts=("ssv2",)
    )
    generate(root, spec, workers=2, progress=False)
    cfg = load_config(
        overrides=[
            "task=retrieval",
            f"data.root={root}",
            "data.num_frames=4",
            "data.image_size=32",
            "data.num_workers=0",
            "model.name=clip_video_tiny",
        ]
    )
    torch.manual_seed(0)
    model = create_model("clip_video_tiny", num_classes=0, num_frames=4, merge="2", num_prompts=2)
    train_ds, val_ds = build_retrieval_datasets(cfg, load_recordset(cfg), model.input_spec)
    train_ds.clips.train, train_ds.train = False, False

    def batch_of(ds: Any) -> dict[str, Any]:
        s = [ds[i] for i in range(len(ds))]
        return {
            "video": torch.stack([x["video"] for x in s]),
            "caption": [x["caption"] for x in s],
            "index": torch.arange(len(s)),
        }

    tr, va = batch_of(train_ds), batch_of(val_ds)
    opt = torch.optim.AdamW(model.param_groups("joint", clip_lr=1e-3, module_lr=1e-3, weight_decay=0.05))
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = torch.randperm(len(tr["caption"]), generator=g)[:batch]
        loss = retrieval_step(model, {"video": tr["video"][idx], "caption": [tr["caption"][i] for i in idx]})
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_m, val_m = evaluate_retrieval(model, [tr]), evaluate_retrieval(model, [va])
    keys = ("t2v_r1", "t2v_r5", "t2v_median_rank", "v2t_r1", "chance_r1", "num_pairs")
    return {
        "steps": steps,
        "batch": batch,
        "train_videos": len(tr["caption"]),
        "seconds": round(time.perf_counter() - t0, 1),
        "train_pairs": {k: round(train_m[k], 3) for k in keys},
        "held_out": {k: round(val_m[k], 3) for k in keys},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--arch", choices=("b32", "tiny"), default="b32", help="random CLIP shapes when --model is not given"
    )
    ap.add_argument("--model", default=None, help="a CLIP from_pretrained directory (overrides --arch)")
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--video-frames", type=int, default=48, help="frames per test video")
    ap.add_argument("--frames", type=int, default=12, help="frames sampled per video")
    ap.add_argument("--merge", default="2-2-2")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--recall", action="store_true", help="also train the tiny CLIP and report recall")
    ap.add_argument("--recall-steps", type=int, default=250)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="vidrec-bench-embed-"))
    try:
        res = measure(args, work)
        if args.recall:
            res["recall"] = recall(work, steps=args.recall_steps)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
