"""The registered ``synthetic`` loader: generate when asked and missing, then read through the SSv2 loader."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from vidrec.data.records import RecordSet, register_dataset
from vidrec.data.synthetic.spec import ANNOTATION_DIR, MANIFEST, SynthSpec
from vidrec.data.synthetic.writer import generate
from vidrec.errors import ConfigError, DatasetError


@register_dataset("synthetic")
def load_synthetic(
    root: Path,
    *,
    split: int = 1,
    strict: bool = False,
    generate_missing: bool = False,
    workers: int = 2,
    progress: bool = False,
    **spec_options: Any,
) -> RecordSet:
    """The synthetic dataset at ``root``, read as SSv2; ``generate_missing`` writes it there first when missing.

    ``spec_options`` are :class:`SynthSpec` fields (``seed``, ``videos_per_class``, ...). Without them
    an existing synthetic folder is read as it is; with them it must match (or be generated).
    Without ``generate_missing`` (``data.generate`` in a config) a missing dataset is an error naming
    ``root``: a mistyped path never gets a dataset written into it.
    Each record's ``meta`` gains ``caption`` and ``boxes_file`` (its Something-Else box file).
    """
    from vidrec.data.ssv2 import load_ssv2

    root = Path(root).expanduser()
    known = {f.name for f in fields(SynthSpec)}
    unknown = sorted(set(spec_options) - known)
    if unknown:
        raise ConfigError(
            f"data: unknown option(s) for the synthetic dataset: {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known | {'generate_missing', 'workers', 'progress'}))}"
        )
    manifest_path = root / MANIFEST
    manifest: dict[str, Any] | None = None
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(
                f"{manifest_path}: unreadable manifest ({exc}). Delete {root} to regenerate it."
            ) from exc
    if manifest is None or not manifest.get("complete") or spec_options:
        if not generate_missing and (manifest is None or not manifest.get("complete")):
            what = "no synthetic dataset" if manifest is None else "an unfinished synthetic dataset"
            raise DatasetError(
                f"data.root {root}: {what} there (is the path right?). Write it with `vidrec synth --out {root}`, "
                "or set data.generate=true to let this command write it."
            )
        generate(root, SynthSpec.from_options(**spec_options), workers=workers, progress=progress)
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    rs = load_ssv2(root, split=split, strict=strict)
    captions = _read_captions(root / "captions.json")
    part_of = {vid: root / ANNOTATION_DIR / name for name, ids in manifest.get("box_parts", {}).items() for vid in ids}
    spec = manifest["spec"]
    for name, recs in rs.subsets.items():
        rs.subsets[name] = [
            replace(
                r,
                fps=float(spec["fps"]),
                num_frames=int(spec["num_frames"]),
                meta={**r.meta, "caption": captions.get(r.video_id, ""), "boxes_file": part_of.get(r.video_id)},
            )
            for r in recs
        ]
    rs.info["synthetic"] = {"spec": spec, "version": manifest.get("version"), "captions": root / "captions.json"}
    return rs


def _read_captions(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {str(s["video_id"]): str(s["caption"]) for s in data.get("sentences", [])}
