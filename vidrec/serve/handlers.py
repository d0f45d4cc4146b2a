"""What the web demo does, with no gradio: load the model and the store once (:func:`load_resources`), classify
an upload (:func:`classify`), search the store by text or by an uploaded video (:func:`text_search`,
:func:`video_search`) into :class:`SearchRow` results.

Every error a user can cause is a one-line :class:`~vidrec.errors.VidrecError` that names a file as the user
knows it (its upload name, or its place under the store's folder), never the server's folders. The previews are
:mod:`vidrec.serve.previews`; the gradio page that wires all this is :mod:`vidrec.serve.app`.
"""

import atexit
import html
import logging
import os
import re
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

from vidrec.errors import VideoError, VidrecError

if TYPE_CHECKING:
    from vidrec.embed.search import Hit
    from vidrec.embed.store import Store
    from vidrec.engine.predict import Predictor

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "mps")
MOMENT_CONTEXT_S = 1.0  # seconds shown before and after a moment
KEEP_PREVIEWS = 32  # preview files kept on disk (gradio copies what it serves into its own cache)
VIDEO_FORMATS = "mp4, webm, avi, mkv, mov, ..."

PathLike = str | Path


class ServeError(VidrecError):
    """The demo was started without what a tab needs, or a request is incomplete or not one it issued."""


def fmt_score(score: float) -> str:
    """A cosine score as the page (and ``vidrec search``) prints it."""
    return f"{score:.4f}"


def fmt_span(start_s: float, end_s: float) -> str:
    """A moment as the page prints it, in seconds."""
    return f"{start_s:.2f}–{end_s:.2f}"


def display_name(path: PathLike, root: Path | None) -> str:
    """``path`` relative to ``root`` (the store's common folder); its file name if it lies elsewhere."""
    p = Path(path)
    if root is not None:
        try:
            return p.relative_to(root).as_posix()
        except ValueError:
            pass
    return p.name


def html_tip(text: str, full: str) -> str:
    """``text`` as HTML with ``full`` in its tooltip (the only place a full server path is shown)."""
    return f'<span title="{html.escape(full, quote=True)}">{html.escape(text)}</span>'


@dataclass
class SearchRow:
    """One search result: a stored video, its cosine score and its best moments (best first)."""

    rank: int
    path: str
    score: float
    moments: list[tuple[float, float, float]] = field(default_factory=list)  # (start_s, end_s, score)

    def table_row(self, root: Path | None = None) -> list[Any]:
        """The row shown in the results table (columns :data:`vidrec.serve.app.TABLE_HEADERS`); the video by its name
        relative to ``root``, the full path in a tooltip."""
        best = fmt_span(*self.moments[0][:2]) if self.moments else ""
        more = ", ".join(fmt_span(a, b) for a, b, _ in self.moments[1:])
        return [self.rank, fmt_score(self.score), html_tip(display_name(self.path, root), self.path), best, more]

    def caption(self, root: Path | None = None) -> str:
        """What the player above the hit's preview says it shows."""
        name = display_name(self.path, root)
        if not self.moments:
            return f"#{self.rank} {name}: the whole video (no moments asked)"
        span = fmt_span(*self.moments[0][:2])
        return f"#{self.rank} {name}: best moment {span} s, with {MOMENT_CONTEXT_S:g} s around it"


def store_root(store: "Store") -> Path | None:
    """The deepest folder holding every video of ``store`` (names in the page are relative to it)."""
    paths = list(store.known())
    if not paths:
        return None
    common = Path(os.path.commonpath(paths))
    return common.parent if len(paths) == 1 or common.as_posix() in paths else common


@dataclass
class Resources:
    """What the demo loads once at startup: a predictor (Classify tab) and/or a store (Search tab)."""

    predictor: Optional["Predictor"] = None
    store: Optional["Store"] = None
    preview_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vidrec-serve-")))
    store_root: Path | None = None  # the store's common folder; computed from the store when not given

    def __post_init__(self) -> None:
        atexit.register(shutil.rmtree, self.preview_dir, True)
        if self.store is not None and self.store_root is None:
            self.store_root = store_root(self.store)

    @property
    def classes(self) -> list[str]:
        return list(self.predictor.ck.classes) if self.predictor is not None else []

    def preview_path(self, stem: str) -> Path:
        """A fresh file name for a preview video; old previews beyond :data:`KEEP_PREVIEWS` are removed."""
        self.preview_dir.mkdir(parents=True, exist_ok=True)
        old = sorted(self.preview_dir.glob("*.mp4"), key=lambda p: p.stat().st_mtime if p.exists() else 0.0)
        for p in old[: max(0, len(old) - KEEP_PREVIEWS + 1)]:
            p.unlink(missing_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:40] or "video"
        return self.preview_dir / f"{safe}-{uuid.uuid4().hex[:8]}.mp4"


def load_resources(
    checkpoint: PathLike | None = None,
    store: PathLike | None = None,
    *,
    device: str = "auto",
    views: int | None = None,
) -> Resources:
    """Load the checkpoint's model and open the store with its encoder, once, with clear errors."""
    if checkpoint is None and store is None:
        raise ServeError(
            "nothing to serve: give --checkpoint DIR (classify uploaded videos), --store DIR "
            "(text search over a library built by vidrec embed), or both"
        )
    if device not in DEVICES:
        raise ServeError(f"--device {device}: unknown; use one of {', '.join(DEVICES)}")
    from vidrec.utils.device import resolve_device

    predictor = None
    if checkpoint is not None:
        from vidrec.engine.predict import Predictor

        onnx = Path(checkpoint).suffix.lower() == ".onnx"  # an exported file: onnxruntime, on the CPU
        predictor = Predictor(Path(checkpoint), device="cpu" if onnx else str(resolve_device(device)), views=views)
        log.info("loaded %s (%s, %d classes)", checkpoint, predictor.ck.cfg.model.name, len(predictor.ck.classes))
    st = None
    if store is not None:
        from vidrec.embed.store import Store, StoreError

        st = Store(store)
        if st.count() == 0:
            raise StoreError(f"{store}: the store holds no videos yet; run vidrec embed VIDEO_DIR --out {store}")
        st.encoder(device=device)  # the encoder that built the store, loaded now rather than on the first query
        log.info("opened store %s (%d videos, encoder %s)", store, st.count(), st.encoder_description.get("source"))
    return Resources(predictor=predictor, store=st)


# ---------------------------------------------------------------------------------------------- handlers
def uploaded_path(video_path: PathLike | None) -> Path:
    if video_path is None or not str(video_path).strip():
        raise ServeError(f"no video uploaded: drop a video file ({VIDEO_FORMATS}) into the box first")
    path = Path(video_path)
    if not path.is_file():
        raise VideoError(f"{path.name}: the upload is gone from the server; upload the video again")
    return path


_ERRNO = re.compile(r"\[Errno -?\d+\]\s*")


def _page_error(exc: VideoError, path: Path, shown: str) -> VideoError:
    """One line for the page about a video it could not read: ``shown`` (a name, never the server
    folder), the reason without errno numbers or paths, and what to do."""
    cause = exc.__cause__
    reason = str(getattr(cause, "strerror", None) or "")  # PyAV's errors: "Invalid data found when processing input"
    if not reason:
        text = str(exc).replace(str(path), shown)
        reason = text[len(shown) + 2 :] if text.startswith(shown + ": ") else text
        reason = re.split(r" \(|\. |\.$", reason, maxsplit=1)[0]  # the first clause: what is wrong, not the CLI's fix
    reason = _ERRNO.sub("", reason).replace(str(path), shown).strip().rstrip(".") or "unknown reason"
    return VideoError(f"{shown}: not a video vidrec can read ({reason}); upload a video file ({VIDEO_FORMATS})")


@contextmanager
def errors_named(path: Path, shown: str | None = None) -> Iterator[None]:
    """Video errors name the file as the user knows it (``shown``, by default the uploaded file's
    name), never the folder it lies in on the server (``/tmp/gradio/<hash>/``)."""
    try:
        yield
    except VideoError as exc:
        raise _page_error(exc, path, shown or path.name) from None
    except VidrecError as exc:  # another library error that names the file: the name only, no errno noise
        if str(path) not in str(exc):
            raise
        raise type(exc)(_ERRNO.sub("", str(exc)).replace(str(path), shown or path.name)) from None


def _probe(path: Path) -> None:
    """Decode the first frame of an upload, so a file that is not a video gets the page's message."""
    from vidrec.video.decode import AutoDecoder

    decoder = AutoDecoder()
    if decoder.info(path).num_frames <= 0:
        raise VideoError(f"{path}: the video has no frames")
    decoder.decode(path, [0])


def classify(predictor: Optional["Predictor"], video_path: PathLike | None, topk: int = 5) -> list[tuple[str, float]]:
    """Top-``topk`` ``(class, probability)`` of one video, best first (as ``vidrec predict``)."""
    if predictor is None:
        raise ServeError("the Classify tab needs a model: start vidrec serve with --checkpoint DIR")
    path = uploaded_path(video_path)
    if int(topk) < 1:
        raise ServeError(f"top-k {topk}: ask for at least one class")
    with errors_named(path):
        return predictor.predict_one(path, topk=int(topk)).topk


def _rows(hits: Sequence["Hit"]) -> list[SearchRow]:
    return [
        SearchRow(i + 1, h.path, h.score, [(m.start_s, m.end_s, m.score) for m in h.moments])
        for i, h in enumerate(hits)
    ]


def _need_store(store: Optional["Store"]) -> "Store":
    if store is None:
        raise ServeError("the Search tab needs a store: start vidrec serve with --store DIR (built by vidrec embed)")
    return store


def text_search(
    store: Optional["Store"], query: str | None, *, k: int = 5, moments: int = 3, encoder: Any = None
) -> list[SearchRow]:
    """Videos of ``store`` that best match a sentence, with their best moments.

    ``encoder`` embeds the query; by default the store's own (the one that built it)."""
    from vidrec.embed.search import check_queries, search

    st = _need_store(store)
    text = check_queries([query if query is not None else ""])[0]
    if encoder is not None:
        vec = encoder.encode_text([text])[0].float().cpu().numpy()
        return _rows(search(st, vec, k=int(k), moments=int(moments)))
    return _rows(search(st, text, k=int(k), moments=int(moments)))


def video_search(
    store: Optional["Store"], video_path: PathLike | None, *, k: int = 5, moments: int = 3
) -> list[SearchRow]:
    """Videos of ``store`` most like an uploaded one, as ``vidrec search --video``: a video the store
    holds (the same bytes) is left out of its own results; another is embedded by the store's encoder."""
    from vidrec.embed.search import search_by_video

    st = _need_store(store)
    path = uploaded_path(video_path)
    with errors_named(path):
        _probe(path)
        return _rows(search_by_video(st, path, k=int(k), moments=int(moments)))
