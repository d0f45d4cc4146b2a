"""TSN-8 sampling on a long 720p video before and after ``vidrec prepare transcode``.

    python benchmarks/transcode.py [--seconds 60] [--clips 12] [--reps 3]

Writes a ``--seconds`` long 1280×720 H.264 video at 25 fps with x264's default GOP (a key frame
every 250 frames; ``preset=ultrafast`` only to write it quickly), transcodes it with the verb's
defaults (short side 256, a key frame every 16 frames), then reads random TSN-8 training clips
(decoded straight to short side 128, crop 112) from both with the one clip reader, interleaved,
in one process, and prints clips/s and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataloading import write_video  # the textured, panning test scene

from vidrec.data.transcode import TranscodeOptions, transcode
from vidrec.utils.device import cpu_model
from vidrec.video.reader import ClipReader
from vidrec.video.sampling import make_frame_sampler
from vidrec.video.transforms import ClipTransform


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path("runs/bench-transcode"))
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--clips", type=int, default=12, help="clips per timing")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    src_dir, out_dir = args.data_dir / "src", args.data_dir / "transcoded"
    src = src_dir / f"long_{args.seconds}s_720p.mp4"
    src_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if not src.exists():
        write_video(src, 25 * args.seconds, 1280, 720, 25, "libx264", options={"preset": "ultrafast"})
    t1 = time.perf_counter()
    summary = transcode(src_dir, out_dir, options=TranscodeOptions())
    t2 = time.perf_counter()
    print(
        f"wrote the source in {t1 - t0:.0f} s; transcoded in {t2 - t1:.1f} s "
        f"({summary.src_bytes / 1e6:.1f} MB -> {summary.dst_bytes / 1e6:.1f} MB)"
    )

    def rate(path: Path, rep: int) -> float:
        reader = ClipReader(
            make_frame_sampler("segments", num_frames=8),
            transform=ClipTransform(train=True, image_size=112),
            decode_size=128,
        )
        reader.info(path)  # facts learned once per file (and cached), as in a DataLoader worker's later epochs
        t = time.perf_counter()
        for i in range(args.clips):
            reader.read(path, train=True, seed=(rep, i))
        return args.clips / (time.perf_counter() - t)

    runs: dict[str, list[float]] = {"before": [], "after": []}
    for rep in range(args.reps):
        for name, path in (("before", src), ("after", out_dir / src.name))[:: 1 if rep % 2 == 0 else -1]:
            runs[name].append(rate(path, rep))
    before, after = statistics.median(runs["before"]), statistics.median(runs["after"])
    cpu = cpu_model()
    print(f"CPU: {cpu}; TSN-8 training clips, short side 128, one process")
    print(f"  before: {before:6.2f} clips/s  {[round(x, 2) for x in runs['before']]}")
    print(f"  after:  {after:6.2f} clips/s  {[round(x, 2) for x in runs['after']]}")
    print(f"  after / before: {after / before:.1f}x")


if __name__ == "__main__":
    main()
