"""GPU throughput: vidrec's fast path against a plain fp32 loop, and how busy the real DataLoader keeps the GPU.

    python benchmarks/gpu.py --json benchmarks/results/gpu.json     # one GPU, under 5 minutes
    python benchmarks/gpu.py --device cpu --tiny                    # checks that it runs (tests), seconds

Everything is made here, on the machine that runs it: random-weight models and, for the loader
section, a synthetic dataset of real video files (``vidrec.data.synthetic``, written to a
temporary folder). Four measurements:

1. **Training clips/s** of r3d_18 at 16×112², batch 32, one optimiser step per batch:
   ``plain`` (fp32, contiguous weights, ``torch.optim.AdamW`` as it comes, no compile) against
   ``fast`` (bf16 autocast, channels-last weights (``channels_last_3d`` for 3D convolutions),
   ``torch.compile``, fused AdamW). Goal: fast ≥ 2× plain.
2. The same for ``cnn_rnn`` (ResNet-18 per frame + BiLSTM) and ``multistream`` (hands, objects,
   context; random side inputs of the right shapes).
3. **GPU busy time** with the real DataLoader: r3d_18 ``fast`` fed by vidrec's own
   ``VideoClipDataset`` / ``build_loader`` (16 workers, uint8 clips through the loader, pinned
   memory, normalised on the GPU). Busy = the time the GPU spent on the training steps (CUDA
   events around each step) / the wall time of the loop. Goal: ≥ 90 %.
4. **Inference clips/s** (what ``vidrec predict`` / ``eval`` run per batch): eval mode,
   ``torch.inference_mode``, ``plain`` fp32 against bf16 + channels-last (+ compile with
   ``--compile-infer``), on uint8 clips normalised on the device.

Each timing is the median of ``--repeats`` rounds of ``--steps`` steps after ``--warmup`` steps
(compilation happens in the warm-up); ``plain`` and ``fast`` alternate round by round, so a shared
machine slows both alike and the ratio is what to read.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from vidrec.models.base import to_channels_last  # noqa: E402
from vidrec.models.registry import create_model  # noqa: E402
from vidrec.utils.device import cpu_model  # noqa: E402
from vidrec.video.transforms import VideoNormalize  # noqa: E402


@dataclass
class Setup:
    """Sizes of one run: the full GPU benchmark, or ``--tiny`` (CPU check)."""

    frames: int = 16
    size: int = 112
    batch: int = 32
    classes: int = 174
    workers: int = 16
    models: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "r3d_18": {},
            "cnn_rnn": {"backbone": "resnet18"},
            "multistream": {},
        }
    )


TINY = Setup(
    frames=4,
    size=32,
    batch=2,
    classes=5,
    workers=2,
    models={
        "r3d_18": {},
        "cnn_rnn": {"backbone": "resnet10t", "hidden_size": 16},
        "multistream": {
            "context_backbone": "test_resnet",
            "object_backbone": "test_efficientnet",
            "object_size": 32,
            "num_objects": 3,
            "fusion_dim": 32,
            "num_heads": 2,
            "lstm_hidden": 16,
            "hand_dim": 16,
            "gnn_hidden": 16,
            "object_dim": 16,
            "context_dim": 16,
        },
    },
)


class Clock:
    """Elapsed time of the work queued on ``device`` (CUDA events), or wall time on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def start(self) -> Any:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def seconds(self, start: Any) -> float:
        """Seconds since ``start`` (waits for the device)."""
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000.0
        return time.perf_counter() - start


def build(name: str, setup: Setup, device: torch.device, *, fast: bool, train: bool, compile_backend: str | None):
    """(step function, model) for one variant; the step takes a uint8 (B, C, T, H, W) batch and side inputs."""
    torch.manual_seed(0)
    model = (
        create_model(
            name, num_classes=setup.classes, num_frames=setup.frames, image_size=setup.size, **setup.models[name]
        )
        if name == "multistream"
        else create_model(name, num_classes=setup.classes, **setup.models[name])
    )
    model = model.to(device).train(train)
    spec = model.input_spec
    norm = VideoNormalize(spec.mean, spec.std)
    if fast:
        to_channels_last(model)
    net: Callable[..., torch.Tensor] = torch.compile(model, backend=compile_backend) if compile_backend else model
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast)
    if not train:

        def infer(video: torch.Tensor, side: dict[str, torch.Tensor], labels: torch.Tensor) -> None:
            with torch.inference_mode(), amp:
                net(norm(video), **side)

        return infer, model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True if fast else None)

    def step(video: torch.Tensor, side: dict[str, torch.Tensor], labels: torch.Tensor) -> None:
        with amp:
            logits = net(norm(video), **side)
        loss = F.cross_entropy(logits.float(), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, model


Batch = tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]  # uint8 video, side inputs, labels


def random_batch(model: Any, setup: Setup, device: torch.device) -> Batch:
    """A fixed random uint8 ``(B, C, T, H, W)`` batch, the model's side inputs and labels, on ``device``."""
    g = torch.Generator().manual_seed(0)
    shape = (setup.batch, 3, setup.frames, setup.size, setup.size)  # (B, C, T, H, W)
    video = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
    side = model.example_side_inputs(setup.batch, setup.frames) if hasattr(model, "example_side_inputs") else {}
    labels = torch.randint(0, setup.classes, (setup.batch,), generator=g)
    return video.to(device), {k: v.to(device) for k, v in side.items()}, labels.to(device)


def throughput(
    name: str, setup: Setup, device: torch.device, args: argparse.Namespace, *, train: bool
) -> dict[str, Any]:
    """plain vs fast clips/s for one model, rounds alternating."""
    clock = Clock(device)
    backend = None if args.no_compile else args.compile_backend
    variants = {
        "plain": build(name, setup, device, fast=False, train=train, compile_backend=None),
        "fast": build(
            name,
            setup,
            device,
            fast=True,
            train=train,
            compile_backend=backend if (train or args.compile_infer) else None,
        ),
    }
    batch = random_batch(variants["plain"][1], setup, device)
    t_warm = time.perf_counter()
    for step, _ in variants.values():
        for _ in range(args.warmup):
            step(*batch)
    clock.seconds(clock.start())  # drain the queue
    warm = time.perf_counter() - t_warm
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for key, (step, _) in variants.items():
            t0 = clock.start()
            for _ in range(args.steps):
                step(*batch)
            times[key].append(clock.seconds(t0))
    clips = {k: args.steps * setup.batch / statistics.median(v) for k, v in times.items()}
    return {
        "model": name,
        "mode": "train" if train else "inference",
        "plain_clips_per_s": round(clips["plain"], 2),
        "fast_clips_per_s": round(clips["fast"], 2),
        "speedup": round(clips["fast"] / clips["plain"], 3),
        "warmup_s": round(warm, 1),
    }


def loader_busy(setup: Setup, device: torch.device, args: argparse.Namespace, data: Path) -> dict[str, Any]:
    """r3d_18 ``fast`` fed by vidrec's DataLoader: share of the loop's wall time the device spent on steps."""
    from vidrec.config import load_config
    from vidrec.data.build import build_dataset, build_loader, load_recordset

    cfg = load_config(
        None,
        overrides=[
            "data.dataset=synthetic",
            f"data.root={data}",
            f"data.num_frames={setup.frames}",
            f"data.image_size={setup.size}",
            f"data.decode_size={setup.size + setup.size // 7}",
            f"data.batch_size={setup.batch}",
            f"data.num_workers={setup.workers}",
            "data.sampler=segments",
            "train.seed=0",
        ],
        environ={},
    )
    rs = load_recordset(cfg)
    backend = None if args.no_compile else args.compile_backend
    step, model = build("r3d_18", setup, device, fast=True, train=True, compile_backend=backend)
    ds = build_dataset(cfg, rs.subset("train"), rs.classes, model.input_spec, train=True, recordset=rs)
    loader = build_loader(cfg, ds, train=True)
    clock = Clock(device)
    busy, steps, epoch, wall = 0.0, 0, 0, 0.0
    t_start = None
    while steps < args.warmup + args.loader_steps:
        loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        for batch in loader:
            video = batch["video"].to(device, non_blocking=True)
            labels = (batch["label"] % setup.classes).to(device, non_blocking=True)
            if steps == args.warmup:  # workers started, compiled: measure from here
                clock.seconds(clock.start())
                t_start = time.perf_counter()
            t0 = clock.start()
            step(video, {}, labels)
            if steps >= args.warmup:
                busy += clock.seconds(t0)  # waits for this step: the next batch is loaded meanwhile by the workers
            steps += 1
            if steps >= args.warmup + args.loader_steps:
                break
        epoch += 1
    clock.seconds(clock.start())
    wall = time.perf_counter() - (t_start or time.perf_counter())
    measured = args.loader_steps * setup.batch
    return {
        "model": "r3d_18",
        "workers": setup.workers,
        "steps": args.loader_steps,
        "busy_fraction": round(busy / wall, 3),
        "loader_clips_per_s": round(measured / wall, 2),
        "videos": len(ds),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--tiny", action="store_true", help="tiny models and clips (CPU check; numbers mean nothing)")
    ap.add_argument("--models", nargs="+", choices=["r3d_18", "cnn_rnn", "multistream"], help="default: all three")
    ap.add_argument("--steps", type=int, default=10, help="steps per timed round")
    ap.add_argument("--repeats", type=int, default=3, help="rounds per variant (median)")
    ap.add_argument("--warmup", type=int, default=3, help="steps before timing (compilation happens here)")
    ap.add_argument("--loader-steps", type=int, default=40, help="timed steps of the DataLoader section")
    ap.add_argument("--no-loader", action="store_true", help="skip the DataLoader section")
    ap.add_argument("--no-compile", action="store_true", help="fast path without torch.compile")
    ap.add_argument("--compile-backend", default="inductor", help="torch.compile backend (CPU checks: eager)")
    ap.add_argument("--compile-infer", action="store_true", help="also compile the inference variant")
    ap.add_argument("--data", type=Path, help="a synthetic dataset to read (default: written to a temporary folder)")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            ap.error("no CUDA GPU is visible; use --device cpu --tiny to check the script on a CPU")
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False  # "plain" means true fp32
        torch.backends.cudnn.allow_tf32 = False
    setup = TINY if args.tiny else Setup()
    models = args.models or list(setup.models)
    t_all = time.perf_counter()
    env = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "tiny": args.tiny,
        "clip": f"{setup.frames}x{setup.size}x{setup.size}",
        "batch": setup.batch,
    }
    print(f"== {env['device']}, torch {env['torch']}, clips {env['clip']}, batch {setup.batch}", flush=True)
    rows = []
    for train in (True, False):
        for name in models:
            r = throughput(name, setup, device, args, train=train)
            rows.append(r)
            print(
                f"{r['mode']:9s} {name:12s} plain {r['plain_clips_per_s']:9.1f} clips/s   "
                f"fast {r['fast_clips_per_s']:9.1f} clips/s   {r['speedup']:.2f}x   (warm-up {r['warmup_s']} s)",
                flush=True,
            )
    loader = None
    if not args.no_loader:
        with tempfile.TemporaryDirectory(prefix="vidrec-gpu-bench-") as tmp:
            data = args.data
            if data is None:
                from vidrec.data.synthetic import SynthSpec, generate

                data = Path(tmp) / "data"
                t0 = time.perf_counter()
                per_class = 2 if args.tiny else 16
                spec = SynthSpec(
                    seed=0,
                    videos_per_class=per_class,
                    val_per_class=0,
                    test_per_class=0,
                    size=max(48, setup.size + 16),
                    num_frames=max(12, 2 * setup.frames),
                    layouts=(),
                )
                generate(data, spec, workers=setup.workers, progress=False)
                print(f"synthetic dataset written in {time.perf_counter() - t0:.1f} s", flush=True)
            loader = loader_busy(setup, device, args, data)
        print(
            f"DataLoader r3d_18: {loader['workers']} workers, busy {loader['busy_fraction']:.1%}, "
            f"{loader['loader_clips_per_s']:.1f} clips/s",
            flush=True,
        )
    result = {"env": env, "throughput": rows, "loader": loader, "seconds": round(time.perf_counter() - t_all, 1)}
    print(f"total {result['seconds']} s", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
