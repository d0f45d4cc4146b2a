"""onnxruntime vs PyTorch on the CPU: one clip through an exported model, interleaved, same threads.

    python benchmarks/onnx_latency.py [--models cnn_rnn r3d_18 lsvit_tiny] [--repeats 20] [--threads 1]
                                      [--batch 1] [--json benchmarks/results/onnx_latency.json]

For each model at its standard input (``vidrec models``: frames × size; random weights, which do
not change the work), writes a checkpoint directory, exports it with ``vidrec.engine.export``
(checking max |Δlogit|), then times one forward pass of a ``--batch`` of clips ``--repeats`` times,
alternating PyTorch (``torch.no_grad``, eval mode) and onnxruntime (CPUExecutionProvider) on the
same input, with both limited to ``--threads`` threads. Prints the medians and the median of the
per-round ratios PyTorch / onnxruntime (above 1: onnxruntime is faster), which stays meaningful on
a machine shared with other jobs, where the absolute times do not.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from vidrec.utils.device import cpu_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(name: str, *, repeats: int, batch: int, workdir: Path) -> dict[str, object]:
    import torch

    from vidrec.config import load_config
    from vidrec.engine.checkpoint import save_checkpoint
    from vidrec.engine.export import export_onnx
    from vidrec.engine.onnx_backend import OnnxModel
    from vidrec.models.registry import create_model, get_model_entry

    spec = get_model_entry(name).input
    cfg = load_config(overrides=[f"model.name={name}", f"data.root={workdir}"])
    torch.manual_seed(0)
    model = create_model(name, num_classes=101).eval()  # UCF101-sized head
    ck = save_checkpoint(workdir / name, model=model, cfg=cfg, classes=[f"class{i}" for i in range(101)])
    res = export_onnx(ck, workdir / f"{name}.onnx")
    runner = OnnxModel(res.path, threads=torch.get_num_threads())
    video = torch.randn(batch, 3, spec.num_frames, spec.image_size, spec.image_size)  # (B, C, T, H, W)
    with torch.no_grad():
        model(video), runner(video)  # warm-up: first-call allocations and kernel selection
        t_pt, t_ort = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(video)
            t1 = time.perf_counter()
            runner(video)
            t2 = time.perf_counter()
            t_pt.append(t1 - t0)
            t_ort.append(t2 - t1)
    ratios = [a / b for a, b in zip(t_pt, t_ort)]
    return {
        "model": name,
        "input": f"{batch}×3×{spec.num_frames}×{spec.image_size}²",
        "max_abs_diff": res.max_abs_diff,
        "export_s": round(res.seconds, 1),
        "pytorch_ms": round(1e3 * statistics.median(t_pt), 1),
        "onnxruntime_ms": round(1e3 * statistics.median(t_ort), 1),
        "ratio": round(statistics.median(ratios), 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["cnn_rnn", "r3d_18", "lsvit_tiny"])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1, help="threads for both PyTorch and onnxruntime")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="vidrec-onnx-bench-") as tmp:
        for name in args.models:
            rows.append(measure(name, repeats=args.repeats, batch=args.batch, workdir=Path(tmp)))
            r = rows[-1]
            print(
                f"{r['model']:12s} {r['input']:16s} PyTorch {r['pytorch_ms']:8.1f} ms  "
                f"onnxruntime {r['onnxruntime_ms']:8.1f} ms  PyTorch/onnxruntime {r['ratio']:.2f}×  "
                f"max |Δlogit| {r['max_abs_diff']:.1e}  (export {r['export_s']} s)",
                flush=True,
            )
    import onnxruntime

    meta = {
        "cpu": cpu_model(),
        "threads": args.threads,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "command": "python benchmarks/onnx_latency.py " + " ".join(argv or sys.argv[1:]),
    }
    print(f"CPU: {meta['cpu']}; {args.threads} thread(s); medians of {args.repeats} interleaved rounds")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
