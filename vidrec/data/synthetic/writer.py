"""``generate``: write a :class:`SynthSpec`'s dataset into a folder, once, never over other data.

The videos are rendered and encoded in parallel worker processes (each video is a function of the
spec and its plan, so scheduling changes nothing); the annotation files are written after them, and
the manifest ``synth.json`` is marked complete last.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Any

from vidrec.data.synthetic.layouts import (
    Results,
    VideoPlan,
    encode_video,
    plan_videos,
    write_captions,
    write_something_else,
    write_ssv2,
    write_ucf_lists,
)
from vidrec.data.synthetic.spec import (
    ANNOTATION_DIR,
    MANIFEST,
    VERSION,
    VIDEO_DIR,
    SynthInfo,
    SynthSpec,
    template_to_class,
)
from vidrec.errors import DatasetError
from vidrec.utils.io import write_json_atomic

log = logging.getLogger(__name__)


def _work(args: tuple[SynthSpec, VideoPlan, str]) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """Worker: one video (a picklable tuple in, for the process pool)."""
    spec, plan, root = args
    return encode_video(spec, plan, Path(root))


def _check_target(out: Path, spec: SynthSpec) -> bool:
    """True when an identical, complete dataset is already at ``out``. Refuse to touch anything else."""
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            old = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(
                f"{manifest}: unreadable manifest ({exc}). Delete {out} or pick another folder."
            ) from exc
        old_spec = old.get("spec", {})
        new_spec = spec.to_json()
        if old.get("version") != VERSION or old_spec != new_spec:
            diff = sorted(k for k in set(old_spec) | set(new_spec) if old_spec.get(k) != new_spec.get(k))
            if old.get("version") != VERSION:
                diff.append(f"version {old.get('version')} -> {VERSION}")
            raise DatasetError(
                f"{out} already holds a synthetic dataset made with a different spec (differs in: {', '.join(diff)}). "
                "vidrec never overwrites data: pass the same options, pick another folder, or delete this one."
            )
        return bool(old.get("complete"))
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out} is a file, so the dataset cannot be written there; pick a new or empty folder.")
    if out.exists() and any(out.iterdir()):
        raise DatasetError(
            f"{out} is not empty and holds no {MANIFEST}, so it is not a vidrec synthetic dataset. "
            "vidrec never overwrites data: pick an empty or new folder."
        )
    return False


def _manifest(
    spec: SynthSpec, counts: dict[str, int], classes: list[str], box_parts: dict[str, list[str]], complete: bool
) -> dict[str, Any]:
    return {
        "generator": "vidrec synth",
        "version": VERSION,
        "complete": complete,
        "spec": spec.to_json(),
        "classes": classes,
        "counts": counts,
        "layout": {"videos": VIDEO_DIR, "annotations": ANNOTATION_DIR},
        "box_parts": box_parts,
    }


def _encode_all(plans: list[VideoPlan], spec: SynthSpec, out: Path, workers: int, progress: bool) -> Results:
    tasks = [(spec, p, str(out)) for p in plans]
    results: Results = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), desc="vidrec synth", unit="video")
    try:
        if workers > 1 and len(tasks) > 1:
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            with ctx.Pool(processes=workers) as pool:
                for vid, box_json, facts in pool.imap_unordered(_work, tasks, chunksize=4):
                    results[vid] = (box_json, facts)
                    if bar is not None:
                        bar.update(1)
        else:
            for task in tasks:
                vid, box_json, facts = _work(task)
                results[vid] = (box_json, facts)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return results


def generate(
    out: str | os.PathLike[str], spec: SynthSpec | None = None, *, workers: int = 2, progress: bool = True
) -> SynthInfo:
    """Write the dataset of ``spec`` (default: ``SynthSpec()``) to ``out``; see :mod:`vidrec.data.synthetic`.

    Re-running with the same spec into the same folder does nothing; a different spec into a
    non-empty folder is refused (:class:`DatasetError`), never overwritten.
    """
    out = Path(out).expanduser()
    spec = SynthSpec() if spec is None else spec
    spec.validate()
    t0 = time.perf_counter()
    chosen = spec.class_defs()
    names = [template_to_class(c.template) for _, c in chosen]
    plans = plan_videos(spec)
    counts = {s: sum(p.subset == s for p in plans) for s in ("train", "val", "test")}
    paths = {
        "videos": out / VIDEO_DIR,
        "annotations": out / ANNOTATION_DIR,
        "labels": out / ANNOTATION_DIR / "something-something-v2-labels.json",
        "captions": out / "captions.json",
    }
    if _check_target(out, spec):
        log.info("%s: synthetic dataset already there (same spec); nothing to do", out)
        return SynthInfo(out, spec, names, counts, False, time.perf_counter() - t0, paths)

    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / MANIFEST, _manifest(spec, counts, names, {}, complete=False))
    results = _encode_all(plans, spec, out, workers, progress)
    lists = write_ssv2(out, plans, names, results)
    box_parts: dict[str, list[str]] = {}
    if "something_else" in spec.layouts:
        box_parts = write_something_else(out, plans, names, results, lists)
        paths["boxes"] = out / ANNOTATION_DIR / "bounding_box_smthsmth_part1.json"
        paths["compositional"] = out / "dataset_splits" / "compositional"
    write_captions(paths["captions"], plans, results)
    if "ucf101" in spec.layouts:
        write_ucf_lists(out, plans, chosen)
        paths["ucf101"] = out / "UCF-101"
    if "folder" in spec.layouts:
        paths["folder"] = out / "folder"
    write_json_atomic(out / MANIFEST, _manifest(spec, counts, names, box_parts, complete=True))
    seconds = time.perf_counter() - t0
    log.info("%s: wrote %d synthetic videos in %.1f s", out, len(plans), seconds)
    return SynthInfo(out, spec, names, counts, True, seconds, paths)
