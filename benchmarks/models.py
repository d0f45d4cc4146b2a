"""Model zoo benchmark: parameters, FLOPs per clip, CPU latency, training clips/s, vs frame_avg.

Every registered model is measured at its standard size (the registry's ``InputSpec``: frames ×
size) in one process, on the CPU, with the same thread count; the frame-averaging baseline is
measured in the same run and every row gets ratios against it. Hugging Face models are measured
from random-initialised base configs (VideoMAE-B 16×224², TimeSformer-B 8×224², ViViT-B 32×224²),
so no hub is needed. ``--flops-only`` counts parameters and FLOPs on the meta device (no compute).

    .venv/bin/python benchmarks/models.py                  # full run, writes docs/models.md
    .venv/bin/python benchmarks/models.py --quick          # tiny sizes: proves the script works
    .venv/bin/python benchmarks/models.py --flops-only     # standard sizes, params + FLOPs, no timing
    .venv/bin/python benchmarks/models.py --models r3d_18 frame_avg --no-write
    .venv/bin/python benchmarks/models.py --update benchmarks/results/models.json --models x3d_xs tsm_r18 frame_avg
        # re-time only these models (the baseline too, for its ratios) and merge them into the saved
        # rows: the other rows, the doc table and the JSON keep their earlier numbers

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` for one clip's forward pass
(a multiply-add counts as 2 FLOPs); LSTMs, whose fused CPU kernel it does not see, are added by
formula. Latency: median of ``--repeats`` forward passes of one clip
in eval mode under ``torch.inference_mode``. Training: clips/s over ``--train-steps`` AdamW steps
of batch ``--batch-size`` after one warm-up step. The synthetic-dataset accuracy column comes
from ``benchmarks/accuracy.py`` (``vidrec train`` runs with one budget): pass ``--accuracy FILE``
(JSON ``{model: top1}``) to fill it; ``--rows FILE`` re-renders the table from an earlier ``--json``
file instead of measuring again.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidrec.models.registry import create_model, list_models  # noqa: E402
from vidrec.utils.device import cpu_model  # noqa: E402

BASELINE = "frame_avg"
MARK_START, MARK_END = "<!-- models-benchmark:start -->", "<!-- models-benchmark:end -->"
NUM_CLASSES = 174  # Something-Something v2

# Tiny sizes for --quick: (builder kwargs, frames, image size).
QUICK: dict[str, tuple[dict[str, Any], int, int]] = {
    "cnn_rnn": ({"hidden_size": 16, "attention_dim": 16}, 4, 32),
    "cnn_rnn_r34": ({"hidden_size": 16}, 4, 32),
    "cnn_rnn_r50": ({"hidden_size": 16}, 4, 32),
    "frame_avg": ({}, 4, 32),
    "r3d_18": ({}, 4, 32),
    "mc3_18": ({}, 4, 32),
    "s3d": ({}, 8, 32),
    "mvit_v1_b": ({}, 16, 224),  # only 16×224² clips
    "mvit_v2_s": ({}, 16, 224),
    "swin3d_t": ({}, 2, 32),
    "swin3d_s": ({}, 2, 32),
    "swin3d_b": ({}, 2, 32),
    "tsm_r18": ({}, 4, 32),
    "tsm_r50": ({}, 2, 32),
    "slowfast_r50": ({"layers": [1, 1, 1, 1]}, 8, 32),
    "x3d_xs": ({}, 4, 32),
    "x3d_s": ({"depth_factor": 1.0}, 4, 32),
    "x3d_m": ({"depth_factor": 1.0}, 4, 32),
    "r3d_34": ({}, 4, 32),
    "r3d_50": ({}, 4, 32),
    "r2plus1d_18": ({}, 4, 32),
    "lsvit": ({"image_size": 32, "embed_dim": 32, "depth": 1, "num_heads": 2}, 4, 32),
    "lsvit_tiny": ({"image_size": 32, "depth": 2}, 4, 32),
    "videomae_small": ({"num_frames": 4, "image_size": 32, "hidden_size": 32, "depth": 1, "num_heads": 2}, 4, 32),
    "timesformer_small": ({"num_frames": 4, "image_size": 32, "hidden_size": 32, "depth": 1, "num_heads": 2}, 4, 32),
    "vivit_small": ({"num_frames": 4, "image_size": 32, "hidden_size": 32, "depth": 1, "num_heads": 2}, 4, 32),
    "clip_video": ({"arch": "tiny", "num_frames": 4}, 4, 32),
    "clip_video_tiny": ({"num_frames": 4}, 4, 32),
    "multistream": (
        {
            "context_backbone": "resnet10t",
            "object_backbone": "resnet10t",
            "num_objects": 2,
            "object_size": 32,
            "num_frames": 4,
            "image_size": 32,
        },
        4,
        32,
    ),
}
# Hugging Face base architectures (random init from a config): name -> (model type, frames at 224²).
HF_BASE = {
    "hf:videomae-base": ("videomae", 16),
    "hf:timesformer-base": ("timesformer", 8),
    "hf:vivit-b-16x2": ("vivit", 32),
}


@dataclass
class Row:
    model: str
    params: int
    frames: int
    size: int
    gflops: float  # per clip, forward
    latency_ms: float  # per clip, batch 1, eval
    train_clips_s: float
    note: str = ""


def _hf_base(name: str, quick: bool) -> tuple[nn.Module, int, int]:
    from vidrec.models.hf_video import HFVideoClassifier

    kind, frames = HF_BASE[name]
    size = (
        dict(num_frames=4, image_size=32, hidden_size=32, depth=1, num_heads=2)
        if quick
        else dict(num_frames=frames, image_size=224, hidden_size=768, depth=12, num_heads=12)
    )
    model = HFVideoClassifier.from_config(model_type=kind, num_classes=NUM_CLASSES, dropout=0.0, **size)  # type: ignore[arg-type]
    return model, size["num_frames"], size["image_size"]


def build(name: str, args: argparse.Namespace) -> tuple[nn.Module, int, int]:
    """The model at its standard size (or the --quick tiny one), with its clip frames and size."""
    if name in HF_BASE:
        return _hf_base(name, args.quick)
    if args.quick:
        kwargs, frames, size = QUICK.get(name, ({}, 4, 32))
        return create_model(name, num_classes=5, **kwargs), frames, size
    model = create_model(name, num_classes=NUM_CLASSES)
    return model, model.input_spec.num_frames, model.input_spec.image_size


def _side_inputs(model: nn.Module, batch: int, frames: int) -> dict[str, torch.Tensor]:
    example = getattr(model, "example_side_inputs", None)
    return example(batch, frames) if example is not None else {}


def _lstm_flops(module: nn.LSTM, inputs: tuple[Any, ...]) -> int:
    """FLOPs of an LSTM forward (FlopCounterMode does not see the fused CPU kernel): 4 gates, 2 per MAC."""
    x = inputs[0]
    b, t = (x.shape[0], x.shape[1]) if module.batch_first else (x.shape[1], x.shape[0])
    dirs = 2 if module.bidirectional else 1
    h, total, in_size = module.hidden_size, 0, module.input_size
    for _ in range(module.num_layers):
        total += 2 * dirs * b * t * 4 * h * (in_size + h)
        in_size = h * dirs
    return total


def count_flops(model: nn.Module, clip: torch.Tensor, side: dict[str, torch.Tensor]) -> int:
    """FLOPs of one forward: FlopCounterMode plus LSTMs counted by formula."""
    extra: list[int] = []
    hooks = [
        m.register_forward_pre_hook(lambda mod, inp: extra.append(_lstm_flops(mod, inp)))
        for m in model.modules()
        if isinstance(m, nn.LSTM)
    ]
    try:
        with FlopCounterMode(display=False) as counter:
            model(clip, **side)
    finally:
        for hook in hooks:
            hook.remove()
    return int(counter.get_total_flops()) + sum(extra)


def measure(name: str, model: nn.Module, frames: int, size: int, args: argparse.Namespace) -> Row:
    params = sum(p.numel() for p in model.parameters())
    clip = torch.randn(1, 3, frames, size, size)  # (B, C, T, H, W)
    side = _side_inputs(model, 1, frames)
    model.eval()
    with torch.inference_mode():
        model(clip, **side)  # warm-up
        flops = count_flops(model, clip, side)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            model(clip, **side)
            times.append(time.perf_counter() - start)
    latency = statistics.median(times) * 1000

    model.train()
    for p in model.parameters():
        p.requires_grad_(True)  # measure full fine-tuning, whatever the frozen defaults
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = torch.randn(args.batch_size, 3, frames, size, size)
    side_b = _side_inputs(model, args.batch_size, frames)
    target = torch.randint(0, NUM_CLASSES if not args.quick else 5, (args.batch_size,))

    def step() -> None:
        loss = nn.functional.cross_entropy(model(batch, **side_b), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(args.train_steps):
        step()
    clips_s = args.train_steps * args.batch_size / (time.perf_counter() - start)
    return Row(name, params, frames, size, flops / 1e9, latency, clips_s)


def read_accuracy(path: Path) -> dict[str, float]:
    """``{model: top1}``, or accuracy.py's details.json (``{model: {"top1": ..., ...}}``)."""
    raw = json.loads(path.read_text())
    return {m: float(v["top1"] if isinstance(v, dict) else v) for m, v in raw.items()}


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def table(rows: list[Row], accuracy: dict[str, float]) -> str:
    base = next((r for r in rows if r.model == BASELINE), None)
    head = (
        "| model | params | input (T×S²) | GFLOPs/clip | × base | CPU latency ms/clip | × base "
        "| train clips/s | × base | synthetic top-1 |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:

        def ratio(v: float, b: float | None) -> str:
            return f"{v / b:.2f}" if b and v == v else "-"

        def num(v: float, fmt: str) -> str:
            return format(v, fmt) if v == v else "-"  # NaN: not measured (--flops-only)

        acc = accuracy.get(r.model)
        lines.append(
            f"| {r.model}{' (' + r.note + ')' if r.note else ''} | {_fmt_params(r.params)} | {r.frames}×{r.size}² "
            f"| {r.gflops:.3g} | {ratio(r.gflops, base.gflops if base else None)} "
            f"| {num(r.latency_ms, '.1f')} | {ratio(r.latency_ms, base.latency_ms if base else None)} "
            f"| {num(r.train_clips_s, '.2f')} | {ratio(r.train_clips_s, base.train_clips_s if base else None)} "
            f"| {'-' if acc is None else f'{acc:.3f}'} |"
        )
    return "\n".join(lines)


def write_doc(path: Path, block: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else f"# Models\n\n{MARK_START}\n{MARK_END}\n"
    if MARK_START not in text:
        text += f"\n{MARK_START}\n{MARK_END}\n"
    pattern = re.compile(re.escape(MARK_START) + ".*?" + re.escape(MARK_END), re.S)
    text = pattern.sub(lambda _: f"{MARK_START}\n{block}\n{MARK_END}", text)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="tiny sizes (seconds): check that the script works")
    ap.add_argument("--flops-only", action="store_true", help="parameters and FLOPs only (meta device, no timing)")
    ap.add_argument("--models", nargs="*", help="only these models (registered names, or hf:videomae-base ...)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--repeats", type=int, default=5, help="timed inference passes per model")
    ap.add_argument("--train-steps", type=int, default=3, help="timed training steps per model")
    ap.add_argument("--batch-size", type=int, default=2, help="training batch size")
    ap.add_argument(
        "--accuracy", type=Path, help="benchmarks/accuracy.py's accuracy.json ({model: top1}) or details.json"
    )
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "models.md", help="Markdown file to update")
    ap.add_argument("--json", type=Path, help="also write the rows (and the measurement line) as JSON here")
    ap.add_argument(
        "--rows", type=Path, help="re-render the table from a --json file (no measuring), e.g. with new --accuracy"
    )
    ap.add_argument(
        "--update",
        type=Path,
        help="measure only --models and merge them into this --json file "
        "(other rows kept); the file and the doc table are rewritten",
    )
    ap.add_argument(
        "--note", default="", help="a note on the measured rows, shown beside the model name (e.g. 'shared machine')"
    )
    ap.add_argument("--no-write", action="store_true", help="print only; leave the doc alone")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    import transformers

    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)

    names = [e.name for e in list_models() if not e.prefix_match] + list(HF_BASE)
    if args.models:
        unknown = [m for m in args.models if m not in names]
        if unknown:
            ap.error(f"unknown models {unknown}; known: {', '.join(names)}")
        names = [n for n in names if n in args.models]
    names.sort(key=lambda n: (n != BASELINE, n))  # the baseline first
    accuracy = read_accuracy(args.accuracy) if args.accuracy else {}
    if args.rows:
        saved = json.loads(args.rows.read_text())
        rows = [Row(**r) for r in saved["rows"] if not args.models or r["model"] in args.models]
        return finish(rows, accuracy, saved["footer"], args)

    if args.update and not args.models:
        ap.error("--update needs --models: the models to measure again")
    rows: list[Row] = []
    for name in names:
        try:
            if args.flops_only:  # shapes only, on the meta device: seconds, no CPU load
                try:
                    with torch.device("meta"):
                        model, frames, size = build(name, args)
                        flops = count_flops(
                            model.eval(), torch.randn(1, 3, frames, size, size), _side_inputs(model, 1, frames)
                        )
                except (RuntimeError, NotImplementedError):  # a model that reads values: one real forward
                    model, frames, size = build(name, args)
                    with torch.inference_mode():
                        flops = count_flops(
                            model.eval(), torch.randn(1, 3, frames, size, size), _side_inputs(model, 1, frames)
                        )
                params = sum(p.numel() for p in model.parameters())
                row = Row(name, params, frames, size, flops / 1e9, float("nan"), float("nan"))
            else:
                model, frames, size = build(name, args)
                row = measure(name, model, frames, size, args)
        except Exception as exc:  # noqa: BLE001 - one model's failure must not hide the others
            print(f"{name}: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
            continue
        row.note = args.note
        rows.append(row)
        print(
            f"{name:22s} {_fmt_params(row.params):>7s} {row.gflops:9.2f} GFLOPs {row.latency_ms:9.1f} ms/clip "
            f"{row.train_clips_s:7.2f} train clips/s",
            flush=True,
        )
        del model

    cpu = cpu_model()
    cmd = " ".join(["python benchmarks/models.py", *(sys.argv[1:] if argv is None else argv)])
    footer = (
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {cpu}, "
        f"{torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}{' — QUICK run: tiny sizes, not the standard ones' if args.quick else ''}"
        f"{' — parameters and FLOPs only (no timing)' if args.flops_only else ''}; "
        f"latency = median of {args.repeats} single-clip forwards; training = {args.train_steps} AdamW steps of "
        f"batch {args.batch_size}, all parameters trainable. Command: `{cmd}`."
    )
    if args.update:
        return finish(merge_rows(args.update, rows, footer), accuracy, _merged_footer(args.update, footer), args)
    return finish(rows, accuracy, footer, args)


def merge_rows(path: Path, measured: list[Row], footer: str) -> list[Row]:
    """The rows saved in ``path`` with ``measured`` in place of (or beside) theirs, baseline first."""
    saved = [Row(**r) for r in json.loads(path.read_text())["rows"]] if path.exists() else []
    new = {r.model: r for r in measured}
    rows = [new.pop(r.model, r) for r in saved] + list(new.values())
    return sorted(rows, key=lambda r: (r.model != BASELINE, r.model))


def _merged_footer(path: Path, footer: str) -> str:
    earlier = json.loads(path.read_text())["footer"] if path.exists() else ""
    return f"{earlier} Updated rows: {footer}" if earlier else footer


def finish(rows: list[Row], accuracy: dict[str, float], footer: str, args: argparse.Namespace) -> int:
    """Print the table, write the JSON and the doc."""
    block = f"{table(rows, accuracy)}\n\n{footer}"
    if accuracy:
        block += " Synthetic top-1: `python benchmarks/accuracy.py` (see below the table)."
    print()
    print(block)
    for out in {p for p in (args.json, args.update) if p}:
        out.write_text(json.dumps({"footer": footer, "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    if not args.no_write:
        write_doc(args.doc, block)
        print(f"\nwrote {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
