"""``vidrec demo`` (vidrec.engine.demo): the whole loop on a small synthetic set, both models, report files.

The demo's own accuracy and time (val top-1 >= 0.90 in under 10 minutes on 2 cores) are measured by
running it (docs/benchmarks.md), not here."""

from __future__ import annotations

import json

import pytest

from vidrec.data.synthetic import CLASSES, SynthSpec
from vidrec.engine.demo import run_demo
from vidrec.errors import VidrecError

TINY = [
    "model.backbone=resnet10t",
    "data.image_size=32",
    "data.decode_size=36",
    "data.num_frames=4",
    "data.batch_size=8",
    "data.num_workers=0",
    "train.epochs=1",
    "train.precision=no",
]  # the preset's channels_last kept


@pytest.mark.slow
def test_demo_trains_both_models_and_writes_its_report(tmp_path):
    spec = SynthSpec(
        seed=0,
        videos_per_class=3,
        val_per_class=2,
        test_per_class=0,
        size=48,
        num_frames=12,
        classes=tuple(c.template for c in CLASSES[:4]),
        layouts=(),
    )  # two temporal pairs
    said: list[str] = []
    with pytest.raises(VidrecError, match="--baseline-epochs must be at least 1"):
        run_demo(tmp_path / "demo", data=spec, overrides=TINY, baseline_epochs=0)
    res = run_demo(
        tmp_path / "demo", data=spec, overrides=TINY, epochs=2, baseline_epochs=1, progress=False, say=said.append
    )
    s = json.loads(res.summary_path.read_text())
    assert s == json.loads(json.dumps(res.summary))
    assert s["num_classes"] == 4 and s["num_val_videos"] == 8
    assert s["epochs_run"] == 2 and s["baseline"]["epochs_run"] == 1  # --epochs over --set; the baseline's own
    assert 0.0 <= s["val_top1"] <= 1.0 and 0.0 <= s["baseline"]["val_top1"] <= 1.0
    assert [p["pair"].count("/") for p in s["temporal_pairs"]] == [1, 1]  # both pairs, both models scored
    assert all(set(p) == {"pair", "cnn_rnn", "frame_avg"} for p in s["temporal_pairs"])
    names = [c for c, _ in s["prediction"]["topk"]]
    assert len(names) == 4 and s["prediction"]["true"] in names  # top-5 of 4 classes: all of them
    assert (res.report_dir / "README.md").read_text().startswith("# vidrec demo report")
    assert {"confusion.png", "report.md", "metrics.json"} <= {p.name for p in res.report_dir.iterdir()}
    assert said[0].startswith("[1/5]") and any(m.startswith("[5/5]") for m in said)
    assert s["total_seconds"] > s["train_seconds"] > 0
    with pytest.raises(VidrecError, match="previous demo"):
        run_demo(tmp_path / "demo", data=spec, overrides=TINY, progress=False)
