"""Training DataLoader speed: vidrec's clip reader against torchcodec and decord, in one run.

    python benchmarks/dataloading.py                 # both sets, 3 interleaved repetitions
    python benchmarks/dataloading.py --quick         # under ~2 minutes on 2 cores
    python benchmarks/dataloading.py --json out.json
    python benchmarks/dataloading.py --floor         # real formats, one process: how far any exact loader can lead

Needs the ``bench`` extra (``pip install -e ".[bench]"``: torchcodec, decord) and, for
torchcodec, the system FFmpeg (``apt-get install -y ffmpeg``). A loader whose package is
missing is reported as such and left out.

The job is the same for every loader: TSN sampling of 8 frames per clip (random within each
segment, seeded per clip, the same indices for every loader), the frames at short side 128,
vidrec's own :class:`~vidrec.video.transforms.ClipTransform` (random resized crop 112, seeded
per clip), normalised float ``B×C×T×H×W`` batches of 8, 2 DataLoader workers. Only decoding and
data movement differ. Each timing is three training epochs after the first (persistent workers), so worker
start-up and the first look at each file are left out, as in a real run's later epochs:

- ``vidrec``: :class:`~vidrec.video.reader.ClipReader` (PyAV; decodes straight to 128, seeks
  only past key frames, skips unreferenced frames); uint8 clips through the DataLoader,
  normalised per batch in the main process.
- ``vidrec-float``: the same, normalised in the worker (float through the DataLoader), to
  show what the uint8 hand-over is worth.
- ``torchcodec``: ``VideoDecoder(...).get_frames_at(indices)`` then a uint8 resize to 128
  (antialiased), transform and normalisation in the worker. Both seek modes are timed;
  ``approximate`` (no file scan on open) is usually the faster.
- ``decord``: ``VideoReader(path, width=w, height=h).get_batch(indices)`` (decoded straight to
  128 by decord), transform and normalisation in the worker.

Two sets: (a) the demo's synthetic set (``vidrec synth``: 96×96 VP9 WebM, 28 frames); (b)
videos written here in the real datasets' formats: UCF101-like (320×240 MPEG-4 Part 2 AVI,
25 fps, a key frame every 12 frames), HMDB51-like (MPEG-4 Part 2 AVI with B-frames, 30 fps,
widths 320/432/560), SSv2-like (VP9 WebM, 12 fps, 240 lines, a single key frame) and 10 s
340×256 H.264 with B-frames. Repetitions are interleaved (every loader once per round, in a
rotating order) so that a busy machine slows all of them alike; the ratios are what to read.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vidrec.utils.device import cpu_model
from vidrec.video.reader import ClipReader, sample_seed
from vidrec.video.sampling import make_frame_sampler
from vidrec.video.transforms import ClipTransform, VideoNormalize

NUM_FRAMES, SHORT, CROP, BATCH = 8, 128, 112, 8
MEAN, STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)


# ------------------------------------------------------------------------------------------ sets
def _frames(n: int, w: int, h: int, seed: int) -> np.ndarray:
    """A textured scene that pans, with a bright square crossing it (encoders work as on real video)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (h // 8 + 3, w // 8 + 3, 3), dtype=np.uint8)
    tex = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))  # blocky texture, (h+16, w+16, 3)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        dy, dx = i % 16, (2 * i) % 16
        out[i] = tex[dy : dy + h, dx : dx + w]
        x = (7 * i) % max(w - 40, 1)
        out[i, h // 3 : h // 3 + 40, x : x + 40] = (240, 220, 40)
    return out


def write_video(
    path: Path,
    n: int,
    w: int,
    h: int,
    fps: float,
    codec: str,
    *,
    options: dict[str, str] | None = None,
    gop: int | None = None,
    bframes: int | None = None,
    seed: int = 0,
) -> None:
    import av

    tmp = path.with_name(path.name + ".tmp" + path.suffix)
    fmt = {".avi": "avi", ".webm": "webm", ".mp4": "mp4"}[path.suffix]
    with av.open(str(tmp), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if options:
            s.options = options
        if gop:
            s.codec_context.gop_size = gop
        if bframes is not None:
            s.codec_context.max_b_frames = bframes
        for arr in _frames(n, w, h, seed):
            for p in s.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    tmp.replace(path)


def real_format_set(root: Path, per_kind: int) -> list[Path]:
    """Videos in the real datasets' formats (written once, reused)."""
    kinds: list[tuple[str, Callable[[Path, int], None]]] = [
        ("ucf101", lambda p, i: write_video(p, 175, 320, 240, 25, "mpeg4", gop=12, options={"qscale": "4"}, seed=i)),
        (
            "hmdb51",
            lambda p, i: write_video(
                p, 90, (320, 432, 560)[i % 3], 240, 30, "mpeg4", bframes=2, options={"qscale": "4"}, seed=i
            ),
        ),
        (
            "ssv2",
            lambda p, i: write_video(
                p,
                48,
                427 // 2 * 2,
                240,
                12,
                "libvpx-vp9",
                seed=i,
                options={"deadline": "realtime", "cpu-used": "8", "g": "1000", "crf": "32", "b:v": "0"},
            ),
        ),
        (
            "h264",
            lambda p, i: write_video(
                p, 250, 340, 256, 25, "libx264", options={"preset": "veryfast", "crf": "23"}, seed=i
            ),
        ),
    ]
    ext = {"ucf101": ".avi", "hmdb51": ".avi", "ssv2": ".webm", "h264": ".mp4"}
    out = []
    for kind, make in kinds:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_kind):
            p = root / kind / f"{kind}_{i:03d}{ext[kind]}"
            if not p.exists():
                make(p, i)
            out.append(p)
    return out


def synthetic_set(root: Path, limit: int) -> list[Path]:
    from vidrec.data.synthetic import SynthSpec, generate

    if not any(root.rglob("*.webm")):
        generate(root, SynthSpec(seed=0), progress=False)
    files = sorted(p for p in root.rglob("*.webm"))
    return files[:limit]


# ------------------------------------------------------------------------------------------ loaders
class _Clips(Dataset[dict[str, Any]]):
    """Shared: which frames (same for every loader) and the same seeded crop."""

    normalize_in_worker = True

    def __init__(self, files: list[Path], facts: dict[str, tuple[int, float, int, int]]) -> None:
        self.files, self.facts = files, facts
        self.frame_sampler = make_frame_sampler("segments", num_frames=NUM_FRAMES)
        self.transform = ClipTransform(train=True, image_size=CROP)
        self.norm = VideoNormalize(MEAN, STD)

    def __len__(self) -> int:
        return len(self.files)

    def indices(self, i: int) -> list[int]:
        n, fps, _, _ = self.facts[str(self.files[i])]
        return self.frame_sampler(n, fps, np.random.default_rng([0, i, 0]))  # what ClipReader.read(seed=(0, i)) draws

    def size(self, i: int) -> tuple[int, int]:
        """(h, w) at short side 128, never upscaled (the crop upsamples small videos, as vidrec's reader does)."""
        _, _, w, h = self.facts[str(self.files[i])]
        s = min(1.0, SHORT / min(w, h))
        return max(2, round(h * s)), max(2, round(w * s))

    def finish(self, frames: torch.Tensor, i: int) -> dict[str, Any]:
        """uint8 T×H×W×C → the seeded crop; normalised here unless the loader hands over uint8."""
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(sample_seed([0, i, 0]))
            video = self.transform(frames)  # (C, T, S, S) uint8
        if self.normalize_in_worker:
            video = self.norm(video[None])[0]  # float, in the worker
        return {"video": video}


class VidrecClips(_Clips):
    normalize_in_worker = False

    def __init__(self, files: list[Path], facts: dict[str, tuple[int, float, int, int]]) -> None:
        super().__init__(files, facts)
        self.reader = ClipReader(self.frame_sampler, transform=self.transform, decode_size=SHORT)

    def __getitem__(self, i: int) -> dict[str, Any]:
        clip = self.reader.read(self.files[i], train=True, seed=(0, i))  # the same rng and crop seed as _Clips
        video = clip.video
        if self.normalize_in_worker:
            video = self.norm(video[None])[0]
        return {"video": video}


class VidrecFloatClips(VidrecClips):
    normalize_in_worker = True


class TorchCodecClips(_Clips):
    seek_mode = "approximate"

    def __getitem__(self, i: int) -> dict[str, Any]:
        from torchcodec.decoders import VideoDecoder
        from torchvision.transforms.v2 import functional as F

        dec = VideoDecoder(str(self.files[i]), seek_mode=self.seek_mode, num_ffmpeg_threads=1)
        last = (dec.metadata.num_frames or 1) - 1  # approximate mode estimates the count from the duration
        idx = [min(j, last) for j in self.indices(i)]
        frames = dec.get_frames_at(idx).data  # (T, C, H, W) uint8
        frames = F.resize(frames, list(self.size(i)), antialias=True)  # uint8 resize
        return self.finish(frames.permute(0, 2, 3, 1), i)


class TorchCodecExactClips(TorchCodecClips):
    seek_mode = "exact"


class DecordClips(_Clips):
    def __getitem__(self, i: int) -> dict[str, Any]:
        import decord

        h, w = self.size(i)
        vr = decord.VideoReader(str(self.files[i]), width=w, height=h, num_threads=1)
        idx = [min(j, len(vr) - 1) for j in self.indices(i)]
        frames = torch.from_numpy(vr.get_batch(idx).asnumpy())  # (T, H, W, C) uint8
        return self.finish(frames, i)


LOADERS: dict[str, type[_Clips]] = {
    "vidrec": VidrecClips,
    "vidrec-float": VidrecFloatClips,
    "torchcodec": TorchCodecClips,
    "torchcodec-exact": TorchCodecExactClips,
    "decord": DecordClips,
}
PEERS = ("torchcodec", "torchcodec-exact", "decord")


def available(name: str) -> str | None:
    """None when the loader can run here, else why not."""
    mod = {"torchcodec": "torchcodec", "torchcodec-exact": "torchcodec", "decord": "decord"}.get(name)
    if mod is None:
        return None
    try:
        __import__(mod)
        if mod == "torchcodec":
            from torchcodec.decoders import VideoDecoder  # noqa: F401  (loads the FFmpeg libraries)
    except Exception as exc:  # noqa: BLE001 - any failure means "not here"
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
    return None


def time_loader(
    cls: type[_Clips],
    files: list[Path],
    facts: dict[str, tuple[int, float, int, int]],
    workers: int,
    epochs: int = 3,
) -> float:
    """Clips/s over ``epochs`` training epochs after the first (persistent workers, as ``vidrec train`` runs them),
    batches normalised as the model gets them. The first epoch (worker start-up, first look at each file) is not
    timed; several timed epochs keep a 160-clip epoch of tiny videos (half a second) from being one sample of noise.
    """
    ds = cls(files, facts)
    norm = VideoNormalize(MEAN, STD)
    loader = DataLoader(
        ds,
        batch_size=BATCH,
        num_workers=workers,
        shuffle=False,
        persistent_workers=workers > 0,
        prefetch_factor=2 if workers else None,
        multiprocessing_context="fork" if workers else None,
    )
    n, t0 = 0, 0.0
    for epoch in range(1 + epochs):
        if epoch == 1:
            n, t0 = 0, time.perf_counter()
        for batch in loader:
            video = norm(batch["video"])  # uint8 → float here (per batch); float batches pass through
            assert video.dtype == torch.float32 and video.shape[1:] == (3, NUM_FRAMES, CROP, CROP)
            n += video.shape[0]
    return n / (time.perf_counter() - t0)


def file_facts(files: list[Path]) -> dict[str, tuple[int, float, int, int]]:
    from vidrec.video.decode import PyAVDecoder

    dec = PyAVDecoder()
    out = {}
    for f in files:
        info = dec.info(f)
        out[str(f)] = (info.num_frames, info.fps, info.width, info.height)
    return out


def check_same_frames(
    files: list[Path], facts: dict[str, tuple[int, float, int, int]], names: list[str]
) -> dict[str, float]:
    """Mean absolute difference (0–255) of each loader's first clips from vidrec's: the same job, checked."""
    ref = VidrecFloatClips(files, facts)
    out = {}
    for name in names:
        ds = LOADERS[name](files, facts)
        diffs = [
            float(
                (
                    ds[i]["video"] - ref[i]["video"]
                    if ds.normalize_in_worker
                    else VideoNormalize(MEAN, STD)(ds[i]["video"][None])[0] - ref[i]["video"]
                )
                .abs()
                .mean()
                * 0.225
                * 255
            )
            for i in range(min(4, len(files)))
        ]
        out[name] = round(statistics.mean(diffs), 2)
    return out


def run_set(
    name: str, files: list[Path], loaders: list[str], reps: int, workers: int, epochs: int = 3
) -> dict[str, Any]:
    facts = file_facts(files)
    same = check_same_frames(files, facts, [n for n in loaders if n != "vidrec-float"])
    rates: dict[str, list[float]] = {n: [] for n in loaders}
    for r in range(reps):
        order = loaders[r % len(loaders) :] + loaders[: r % len(loaders)]  # rotate who goes first
        for n in order:
            rates[n].append(time_loader(LOADERS[n], files, facts, workers, epochs))
    med = {n: statistics.median(v) for n, v in rates.items()}
    peers = {n: v for n, v in med.items() if n in PEERS}
    best = max(peers, key=peers.get) if peers else None  # type: ignore[arg-type]
    res = {
        "set": name,
        "videos": len(files),
        "clips_per_s": {n: round(v, 1) for n, v in med.items()},
        "runs": {n: [round(x, 1) for x in v] for n, v in rates.items()},
        "best_peer": best,
        "mean_abs_diff_vs_vidrec": same,
    }
    if best:
        res["ratio_vs_best_peer"] = round(med["vidrec"] / peers[best], 2)
    return res


_DECODE = "<method 'decode' of 'av.packet.Packet' objects>"
_CONVERT = (
    "<method 'reformat' of 'av.video.reformatter.VideoReformatter' objects>",
    "<method 'to_ndarray' of 'av.video.frame.VideoFrame' objects>",
)


def floor_report(files: list[Path], loaders: list[str], reps: int = 3) -> dict[str, Any]:
    """Per format, in one process: CPU ms per clip of every loader (best of ``reps``), and the floor that every
    loader returning these exact clips pays: FFmpeg decoding the frames the clip needs (vidrec's reader decodes
    no others), their conversion to RGB at short side 128 and the common ``ClipTransform``, taken as their share
    of vidrec's profile (cProfile inflates the Python around them, so the floor is if anything too low and the
    bound ``best peer / floor`` too high)."""
    import cProfile
    import pstats

    kinds: dict[str, list[Path]] = {}
    for f in files:
        kinds.setdefault(f.parent.name, []).append(f)
    out: dict[str, Any] = {}
    for kind, group in [*kinds.items(), ("all", files)]:
        if kind == "all":
            ms = {n: sum(out[k]["ms_per_clip"][n] for k in kinds) for n in loaders}
            floor = sum(out[k]["floor_ms"] for k in kinds)
        else:
            facts = file_facts(group)
            sets = {n: LOADERS[n](group, facts) for n in loaders}
            ms = {n: float("inf") for n in loaders}
            for ds in sets.values():
                ds[0]  # open once: facts and first-use costs out of the timing
            for _ in range(reps):
                for n, ds in sets.items():
                    t = time.process_time()
                    for i in range(len(group)):
                        ds[i]
                    ms[n] = min(ms[n], (time.process_time() - t) / len(group) * 1e3)
            prof = cProfile.Profile()
            prof.enable()
            for i in range(len(group)):
                sets["vidrec"][i]
            prof.disable()
            st = pstats.Stats(prof).stats  # type: ignore[attr-defined]
            total = sum(v[2] for v in st.values())
            share = sum(v[2] for k, v in st.items() if k[2] == _DECODE or k[2] in _CONVERT)
            share += sum(v[3] for k, v in st.items() if k[2] == "_transform")
            floor = ms["vidrec"] * share / total
        peers = [n for n in loaders if n in PEERS]
        best = min(peers, key=lambda n: ms[n]) if peers else "vidrec"  # no peer installed: vidrec against itself
        out[kind] = {
            "ms_per_clip": {n: round(v, 2) for n, v in ms.items()},
            "floor_ms": round(floor, 2),
            "best_peer": best,
            "best_peer_over_floor": round(ms[best] / floor, 2),
            "vidrec_over_best_peer": round(ms[best] / ms["vidrec"], 2),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--data-dir", type=Path, default=Path("runs/bench-data"), help="where the two sets are written (reused)"
    )
    ap.add_argument(
        "--synthetic-root",
        type=Path,
        default=None,
        help="an existing `vidrec synth` folder (default: written under --data-dir)",
    )
    ap.add_argument(
        "--quick", action="store_true", help="fewer videos and repetitions (about 2 minutes on 2 quiet cores)"
    )
    ap.add_argument("--reps", type=int, default=None, help="interleaved repetitions (default 3, --quick 2)")
    ap.add_argument("--per-kind", type=int, default=None, help="real-format videos per kind (default 16, --quick 6)")
    ap.add_argument("--synthetic", type=int, default=None, help="synthetic videos (default 160, --quick 48)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--epochs", type=int, default=None, help="timed epochs per repetition, after an untimed one (3; --quick 1)"
    )
    ap.add_argument("--loaders", nargs="+", default=list(LOADERS), choices=list(LOADERS))
    ap.add_argument("--sets", nargs="+", default=["synthetic", "real-format"], choices=["synthetic", "real-format"])
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument(
        "--floor",
        action="store_true",
        help="real formats only, one process: CPU per clip of each loader and the decode + convert + transform "
        "floor that bounds any exact loader's lead",
    )
    args = ap.parse_args()
    reps = args.reps or (2 if args.quick else 3)
    per_kind = args.per_kind or (4 if args.quick else 16)
    n_syn = args.synthetic or (64 if args.quick else 160)
    epochs = args.epochs or (1 if args.quick else 3)
    torch.set_num_threads(1)
    loaders = []
    for n in args.loaders:
        why = available(n)
        if why:
            print(
                f"{n}: not available ({why}); install the bench extra: "
                "pip install -e '.[bench]' (and apt-get install ffmpeg)"
            )
        else:
            loaders.append(n)
    cpu = cpu_model()
    print(
        f"CPU: {cpu}, {os.cpu_count()} cores; workers {args.workers}, batch {BATCH}, "
        f"TSN-{NUM_FRAMES}, short side {SHORT}, "
        f"crop {CROP}; {reps} interleaved repetitions of {epochs} timed epochs"
    )
    t0 = time.perf_counter()
    sets = {}
    if "synthetic" in args.sets:
        sets["synthetic"] = synthetic_set(args.synthetic_root or args.data_dir / "synthetic", n_syn)
    if "real-format" in args.sets:
        sets["real-format"] = real_format_set(args.data_dir / "real-format", per_kind)
    print(
        f"sets ready in {time.perf_counter() - t0:.0f} s: " + ", ".join(f"{k} {len(v)} videos" for k, v in sets.items())
    )
    if args.floor:
        rows = floor_report(
            sets.get("real-format") or real_format_set(args.data_dir / "real-format", per_kind), loaders
        )
        print("\nreal formats, one process, CPU ms per clip (best of 3):")
        for kind, r in rows.items():
            print(
                f"  {kind:8s} "
                + " ".join(f"{n} {v:.1f}" for n, v in r["ms_per_clip"].items())
                + f" | floor {r['floor_ms']:.1f}: best peer ({r['best_peer']}) / floor"
                f" {r['best_peer_over_floor']:.2f}x, best peer / vidrec {r['vidrec_over_best_peer']:.2f}x"
            )
        return
    results = []
    for name, files in sets.items():
        res = run_set(name, files, loaders, reps, args.workers, epochs)
        results.append(res)
        print(f"\n{name} ({res['videos']} videos); clips/s (median of {reps}) and runs:")
        for n in loaders:
            print(f"  {n:17s} {res['clips_per_s'][n]:7.1f}   {res['runs'][n]}")
        if res.get("best_peer"):
            print(f"  vidrec / best peer ({res['best_peer']}): {res['ratio_vs_best_peer']:.2f}x")
        print(f"  mean |difference| from vidrec's clips, 0-255 scale: {res['mean_abs_diff_vs_vidrec']}")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"cpu": cpu, "cores": os.cpu_count(), "workers": args.workers, "reps": reps, "results": results},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
