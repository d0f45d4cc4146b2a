"""Talk to a launched gradio app over its real HTTP API, as a browser (or an attacker) does:
POST /gradio_api/queue/join, then read the server-sent events of /gradio_api/queue/data."""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path
from typing import Any

import httpx

API = "gradio_api"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GradioHTTP:
    """One browser session (``session_hash``) on the app at ``url``."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/") + "/"
        self.session = uuid.uuid4().hex
        self.config = httpx.get(self.url + "config", timeout=30).raise_for_status().json()

    def component_id(self, elem_id: str) -> int:
        return next(c["id"] for c in self.config["components"] if c.get("props", {}).get("elem_id") == elem_id)

    def fn_index(self, elem_id: str, event: str) -> int:
        """The index of the event handler the page calls for ``event`` on the component ``elem_id``."""
        target = self.component_id(elem_id)
        for dep in self.config["dependencies"]:
            if [target, event] in [list(t) for t in dep["targets"]]:
                return int(dep["id"])
        raise LookupError(f"no {event} handler on #{elem_id}")

    def call(
        self, fn_index: int, data: list[Any], *, event_data: Any = None, trigger: str | None = None
    ) -> dict[str, Any]:
        """Run one event; returns gradio's ``process_completed`` message (``success``, ``output``)."""
        body = {
            "data": data,
            "fn_index": fn_index,
            "session_hash": self.session,
            "event_data": event_data,
            "trigger_id": self.component_id(trigger) if trigger else None,
        }
        httpx.post(self.url + f"{API}/queue/join", json=body, timeout=30).raise_for_status()
        with httpx.stream(
            "GET", self.url + f"{API}/queue/data", params={"session_hash": self.session}, timeout=120
        ) as resp:
            for line in resp.iter_lines():
                if line.startswith("data:"):
                    msg = json.loads(line[5:])
                    if msg.get("msg") in ("process_completed", "unexpected_error"):
                        return dict(msg)
        raise AssertionError("the event stream ended without a result")

    def upload(self, path: Path) -> httpx.Response:
        with open(path, "rb") as fh:
            return httpx.post(self.url + f"{API}/upload", files={"files": (path.name, fh)}, timeout=60)

    def fetch(self, file_url: str) -> httpx.Response:
        return httpx.get(file_url, timeout=30)


def file_data(path: str | Path) -> dict[str, Any]:
    """What the page sends for a file it uploaded (a forged one when ``path`` was never uploaded)."""
    return {"path": str(path), "orig_name": Path(path).name, "meta": {"_type": "gradio.FileData"}}
