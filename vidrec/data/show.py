"""The report behind ``vidrec data show``: classes, records per subset and per class, problems."""

from __future__ import annotations

import inspect
from collections import Counter
from typing import Any, Mapping

from vidrec.data.records import RecordSet, get_dataset_loader


def datasets_help() -> str:
    """Every built-in dataset with its ``data.*`` options, read from the loaders' source (``--help``: nothing imported).

    Paragraphs (one per dataset) separated by blank lines, as typer renders an epilog.
    """
    import ast
    from pathlib import Path

    import vidrec
    from vidrec.data.records import _LOADER_MODULES

    package = Path(vidrec.__file__).parent
    out = ["Datasets (--set data.dataset=NAME) and their options (--set data.OPTION=VALUE):"]
    for name, module in sorted(_LOADER_MODULES.items()):
        path = package.joinpath(*module.split(".")[1:]).with_suffix(".py")
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError):
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Call) and d.args and isinstance(d.args[0], ast.Constant) and d.args[0].value == name
                for d in node.decorator_list
            ):
                args = node.args
                opts = [
                    f"{a.arg}={ast.unparse(d) if d is not None else '?'}"
                    for a, d in zip(args.kwonlyargs, args.kw_defaults)
                    if a.arg not in ("split", "strict")
                ]
                out.append(f"{name}: {', '.join(opts) or 'no options'}")
    out.append(
        "Each loader's docstring and docs/datasets.md say what an option does; "
        "vidrec data show prints the values it ran with."
    )
    return "\n\n".join(out)


def loader_options(dataset: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """Every ``data.*`` option of ``dataset``'s loader, with the value it runs with (given, else its default)."""
    params = inspect.signature(get_dataset_loader(dataset)).parameters
    return {
        n: given.get(n, p.default)
        for n, p in params.items()
        if p.kind is p.KEYWORD_ONLY and n not in ("split", "strict")
    }


def dataset_report(
    rs: RecordSet,
    *,
    dataset: str = "",
    root: str = "",
    split: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A JSON-ready summary of a loader's result (``options``: the loader options it ran with)."""
    per_class: dict[str, dict[str, int]] = {}
    same_as: dict[str, str] = {}
    names = list(rs.subsets)
    for i, name in enumerate(names):
        recs = rs.subsets[name]
        ids = [r.video_id for r in recs]
        for other in names[:i]:
            if len(rs.subsets[other]) == len(recs) and [r.video_id for r in rs.subsets[other]] == ids:
                same_as[name] = other
                break
        counts = Counter(r.label for r in recs)
        per_class[name] = {c: counts.get(k, 0) for k, c in enumerate(rs.classes)}
        unknown = counts.get(-1, 0)
        if unknown:
            per_class[name]["(unlabelled)"] = unknown
    info = {
        k: (str(v) if not isinstance(v, (int, float, bool, type(None), list, dict)) else v) for k, v in rs.info.items()
    }
    return {
        "dataset": dataset,
        "root": root,
        "split": split,
        "options": {
            k: (v if isinstance(v, (int, float, bool, type(None), list)) else str(v))
            for k, v in (options or {}).items()
        },
        "classes": list(rs.classes),
        "num_classes": len(rs.classes),
        "subsets": {k: len(v) for k, v in rs.subsets.items()},
        "same_records": same_as,
        "per_class": per_class,
        "problems": list(rs.problems),
        "info": info,
    }


def format_report(report: dict[str, Any], *, max_problems: int | None = None) -> str:
    """Human-readable table: one row per class, one column per subset, then every problem."""
    lines = []
    head = f"dataset {report['dataset']}" + (f" (split {report['split']})" if report.get("split") else "")
    lines.append(f"{head} at {report['root']}")
    if report.get("options"):
        lines.append("options: " + ", ".join(f"data.{k}={v}" for k, v in report["options"].items()))
    subsets = list(report["subsets"])
    lines.append(
        f"{report['num_classes']} classes; " + ", ".join(f"{k}: {n} videos" for k, n in report["subsets"].items())
    )
    for k, other in report.get("same_records", {}).items():
        lines.append(f"  ({k} holds the same records as {other})")
    lines += _subset_notes(report.get("info", {}))
    width = max([len("class")] + [len(c) for c in report["classes"]] + [len("(unlabelled)")]) + 2
    cols = "".join(f"{s:>10}" for s in subsets)
    lines.append("")
    lines.append(f"{'#':>4}  {'class':<{width}}{cols}")
    rows = list(report["classes"])
    if any("(unlabelled)" in report["per_class"][s] for s in subsets):
        rows.append("(unlabelled)")
    for i, c in enumerate(rows):
        idx = str(i) if c != "(unlabelled)" else ""
        vals = "".join(f"{report['per_class'][s].get(c, 0):>10}" for s in subsets)
        lines.append(f"{idx:>4}  {c:<{width}}{vals}")
    probs = report["problems"]
    lines.append("")
    if not probs:
        lines.append("no problems found")
    else:
        lines.append(f"{len(probs)} problem(s):")
        shown = probs if max_problems is None else probs[:max_problems]
        lines += [f"  - {p}" for p in shown]
        if len(shown) < len(probs):
            lines.append(f"  ... and {len(probs) - len(shown)} more (--json lists all)")
    return "\n".join(lines)


def _subset_notes(info: dict[str, Any], *, shown: int = 12) -> list[str]:
    """Lines saying that labels were remapped and which annotation lines a class subset left out."""
    out = [f"note: {n}" for n in info.get("notes", [])]
    remap = info.get("remapped_ids")
    if remap:
        pairs = [f"{o}->{k}" for o, k in remap["map"].items()]
        more = f", ... ({len(pairs)} in all)" if len(pairs) > shown else ""
        out.append(
            f"class ids remapped: labels are 0..{len(pairs) - 1} in the order below; "
            f"{remap['source']} id -> label: {', '.join(pairs[:shown])}{more}"
        )
    left = info.get("left_out")
    if left:
        names = info.get("left_out_classes", [])
        more = ", ..." if len(names) > shown else ""
        counts = ", ".join(f"{k} {n:,}" for k, n in left.items())
        out.append(
            f"class subset: left out {counts} annotated videos of {len(names)} other class(es): "
            f"{', '.join(names[:shown])}{more}"
        )
    return out
