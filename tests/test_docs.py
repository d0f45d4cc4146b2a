"""The commands the docs tell users to run exist: every ``vidrec ...`` line in a code block of the pages
below names a real verb, and every option on it is one of that verb's options. A renamed option or
verb fails here, not in a user's terminal."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["docs/workflows.md", "docs/usage.md", "docs/embeddings.md", "README.md"]


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
    text = ("```bash\nvidrec predict --checkpoint ck a.mp4 \\\n    --batch-szie 4   # typo\n"
            "vidrec evaluate --checkpoint ck\n```\n")
    found = [check(line, root) for line in commands(text)]
    assert found == ["vidrec predict: no option --batch-szie", "vidrec evaluate: no such verb"]
    assert check("vidrec moments a.mp4 'q' --model m -vv -k 3", root) is None
