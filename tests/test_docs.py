"""The commands the docs tell users to run exist: every ``vidrec ...`` line in a code block of the pages
below names a real verb, and every option on it is one of that verb's options; the ``--set`` keys of a
line load with its ``--config`` (a file of the repository or one the page writes with ``cat > F <<'EOF'``),
and a ``vidrec config`` line the page shows failing (``error: ...`` on the next line) fails with that
message. A renamed option, verb or config key fails here, not in a user's terminal."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["docs/workflows.md", "docs/usage.md", "docs/embeddings.md", "docs/datasets.md", "README.md"]


def commands(text: str) -> list[str]:
    """The ``vidrec`` command lines of the fenced code blocks of a Markdown text (continuations joined)."""
    out = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith("vidrec "):
                out.append(line)
    return out


def check(line: str, root) -> str | None:  # type: ignore[no-untyped-def]
    """What is wrong with one command line, or None."""
    tokens = shlex.split(line, comments=True)[1:]
    cmd, path = root, ["vidrec"]
    while hasattr(cmd, "commands") and tokens and tokens[0] in cmd.commands:
        path.append(tokens[0])
        cmd = cmd.commands[tokens.pop(0)]
    if hasattr(cmd, "commands"):
        return f"{' '.join(path)} {tokens[0] if tokens else ''}: no such verb"
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    for tok in tokens:
        tok = tok.strip("[]")
        if not re.match(r"^--?[A-Za-z]", tok):
            continue
        name = tok.split("=", 1)[0]
        shorts = [f"-{c}" for c in name[1:]] if re.fullmatch(r"-[A-Za-z]{2,}", name) else [name]  # -vv
        for opt in shorts:
            if opt not in known:
                return f"{' '.join(path)}: no option {opt}"
    return None


@pytest.mark.parametrize("page", PAGES)
def test_documented_commands_exist(page: str) -> None:
    from vidrec.cli import command

    root = command()
    lines = commands((ROOT / page).read_text(encoding="utf-8"))
    assert lines, f"{page}: no vidrec commands found"
    bad = [f"{line!r}: {why}" for line in lines if (why := check(line, root))]
    assert not bad, "\n".join(bad)


def test_the_check_catches_a_wrong_option_and_verb() -> None:
    from vidrec.cli import command

    root = command()
    text = (
        "```bash\nvidrec predict --checkpoint ck a.mp4 \\\n    --batch-szie 4   # typo\n"
        "vidrec evaluate --checkpoint ck\n```\n"
    )
    found = [check(line, root) for line in commands(text)]
    assert found == ["vidrec predict: no option --batch-szie", "vidrec evaluate: no such verb"]
    assert check("vidrec moments a.mp4 'q' --model m -vv -k 3", root) is None


def config_lines(text: str) -> list[tuple[str, str | None]]:
    """``(command line, documented error or None)`` of the ``vidrec`` lines with ``--set``."""
    out = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        lines = [ln.strip() for ln in re.sub(r"\\\n\s*", " ", block).splitlines()]
        for i, line in enumerate(lines):
            line = line.removeprefix("$ ")
            if line.startswith("vidrec ") and re.search(r"\s(--set|-s)\s", line):
                nxt = lines[i + 1] if i + 1 < len(lines) else ""
                out.append((line, nxt.removeprefix("error: ") if nxt.startswith("error: ") else None))
    return out


def written_files(text: str, into: Path) -> dict[str, Path]:
    """The files a page writes with ``cat > NAME <<'EOF'``, written under ``into``."""
    out = {}
    for name, body in re.findall(r"cat > (\S+) <<'EOF'\n(.*?)\nEOF\n", text, flags=re.S):
        out[name] = into / name
        out[name].write_text(body.replace("_base_: configs/", f"_base_: {ROOT / 'configs'}/"), encoding="utf-8")
    return out


def check_config(line: str, error: str | None, files: dict[str, Path]) -> str | None:
    """What is wrong with the config a command line builds (its ``--config`` and ``--set``), or None."""
    from vidrec.config import load_config
    from vidrec.errors import VidrecError

    if error is not None and not line.startswith("vidrec config "):
        return None  # an error of the run (a missing data root), not of the config
    tokens = shlex.split(line, comments=True)
    value = {t: tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t in ("--config", "-c")}
    sets = [tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t in ("--set", "-s")]
    path = value.get("--config") or value.get("-c")
    if path is not None:
        path = files.get(path) or ROOT / path
        if not path.is_file():
            return None  # a file of the user's (or a checkpoint's config): nothing to check it against
    try:
        load_config(path, overrides=sets, environ={})
    except VidrecError as exc:
        parts = [p.strip() for p in (error or "").split("...")]
        if error is None or not all(p in str(exc) for p in parts):
            return f"{exc}" + (f" (the page says: {error})" if error else "")
        return None
    return f"loads, but the page shows it failing with: {error}" if error else None


@pytest.mark.parametrize("page", PAGES)
def test_documented_config_keys_load(page: str, tmp_path: Path) -> None:
    text = (ROOT / page).read_text(encoding="utf-8")
    files = written_files(text, tmp_path)
    bad = [f"{line!r}: {why}" for line, err in config_lines(text) if (why := check_config(line, err, files))]
    assert not bad, "\n".join(bad)


def test_documented_embed_options_load(tmp_path: Path) -> None:
    from vidrec.embed.options import embed_options

    files = written_files((ROOT / "docs/workflows.md").read_text(encoding="utf-8"), tmp_path)
    opts = embed_options(files["embed.yaml"])
    assert (opts.frames, opts.merge, opts.fusion) == (12, "2-2-2", "meanP")


def test_the_config_check_catches_a_wrong_key_and_a_stale_error(tmp_path: Path) -> None:
    text = (
        "```bash\ncat > my.yaml <<'EOF'\n_base_: configs/ucf101.yaml\ntrain:\n  epochs: 3\nEOF\n"
        "vidrec train --config my.yaml --set train.lrr=3\nvidrec train -c my.yaml -s train.lr=0.1\n```\n"
        "```\n$ vidrec config show --set train.lr=.inf\nerror: train.lr: must be small\n```\n"
    )
    files = written_files(text, tmp_path)
    found = [check_config(line, err, files) for line, err in config_lines(text)]
    assert "train.lrr: unknown key" in found[0] and found[1] is None
    assert "(the page says: train.lr: must be small)" in found[2]
