"""What turns frames into embeddings for ``vidrec embed`` / ``vidrec search``.

An :class:`Encoder` wraps either a CLIP video model (:class:`~vidrec.models.video_clip.VideoCLIP`,
which also embeds text) or any trained vidrec classifier checkpoint (its ``forward_features``;
video-to-video search only). ``describe()`` is what the store records, so that a store is never
filled by two different encoders.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, cast

import torch
import torch.nn.functional as F

from vidrec.errors import UnsafeFileError, VidrecError, WeightsError
from vidrec.models.base import VideoClassifier, input_spec_of
from vidrec.models.video_clip import DEFAULT_HUB_ID, VideoCLIP, clip_video
from vidrec.utils.device import autocast, resolve_device

if TYPE_CHECKING:
    from vidrec.video.reader import ClipReader

log = logging.getLogger(__name__)


class EncoderError(VidrecError):
    """The encoder cannot be loaded or cannot do what was asked (e.g. text with a classifier)."""


NO_MODEL_HELP = (
    "pass --model with one of: a CLIP from_pretrained directory (config.json + model.safetensors, "
    "e.g. a local copy of openai/clip-vit-base-patch32), a vidrec checkpoint directory "
    "(runs/<run>/checkpoints/best), or a hub id such as openai/clip-vit-base-patch32 when online"
)


class Encoder:
    """Frames in, normalised embeddings out. Subclasses set ``model`` and implement ``encode``."""

    has_text = False

    def __init__(
        self,
        *,
        source: str,
        options: dict[str, Any],
        num_frames: int,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device,
    ) -> None:
        self.source = source
        self.options = options  # what load_encoder needs to rebuild this encoder
        self.num_frames = num_frames
        self.image_size = image_size
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1, 1)
        self.device = device

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError

    def clip_reader(self) -> ClipReader:
        """How videos become this encoder's clips: TSN segments, short side ``image_size``, centre crop."""
        from vidrec.video.reader import ClipReader
        from vidrec.video.sampling import make_frame_sampler
        from vidrec.video.transforms import ClipTransform

        return ClipReader(
            make_frame_sampler("segments", num_frames=self.num_frames),
            transform=ClipTransform(train=False, image_size=self.image_size, resize_size=self.image_size),
            decode_size=self.image_size,
        )

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, T, H, W, C)`` → normalised float ``(B, C, T, H, W)`` on the device."""
        x = frames.to(self.device, non_blocking=True).permute(0, 4, 1, 2, 3).float().div_(255)  # (B, C, T, H, W)
        return (x - self.mean) / self.std

    def encode(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[list[int]]]:
        """uint8 frames ``(B, T, H, W, C)`` → video ``(B, E)``, clips ``(B, T', E)`` (both L2-normalised)
        and the sampled-frame positions each clip covers."""
        raise NotImplementedError

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        raise EncoderError(
            f"the encoder {self.source} has no text tower (it is a classifier checkpoint); "
            "search this store with --video CLIP.mp4, or build a store with a CLIP model for text search"
        )


class ClipEncoder(Encoder):
    has_text = True

    def __init__(self, model: VideoCLIP, *, source: str, options: dict[str, Any], device: torch.device) -> None:
        spec = model.input_spec
        super().__init__(
            source=source,
            options=options,
            num_frames=model.num_frames,
            image_size=spec.image_size,
            mean=spec.mean,
            std=spec.std,
            device=device,
        )
        self.model = model.to(device).eval()

    def describe(self) -> dict[str, Any]:
        d = self.model.describe()
        d["source"] = self.source
        return d

    @torch.inference_mode()
    def encode(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[list[int]]]:
        x = self.preprocess(frames)
        with autocast(self.device):
            enc = self.model.encode_video(x)
        return F.normalize(enc.video.float(), dim=-1), F.normalize(enc.clips.float(), dim=-1), enc.groups

    @torch.inference_mode()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        with autocast(self.device):
            out = self.model.embed_texts(list(texts))
        return F.normalize(out.float(), dim=-1)


class ClassifierEncoder(Encoder):
    """A trained vidrec classifier's ``forward_features``: one embedding per clip (video-level)."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        source: str,
        options: dict[str, Any],
        device: torch.device,
        cfg: Any = None,
        classes: Sequence[str] = (),
    ) -> None:
        spec = input_spec_of(model)
        if cfg is not None:  # the checkpoint's own clip: its frames, size, mean and std
            from vidrec.data.build import build_normalizer, resolved_clip

            n, size = resolved_clip(cfg, spec)
            norm = build_normalizer(cfg, spec)
            if "num_frames" in options:
                n = int(options["num_frames"])
            super().__init__(
                source=source,
                options=options,
                num_frames=n,
                image_size=size,
                mean=norm.mean,
                std=norm.std,
                device=device,
            )
        else:
            super().__init__(
                source=source,
                options=options,
                num_frames=spec.num_frames,
                image_size=spec.image_size,
                mean=spec.mean,
                std=spec.std,
                device=device,
            )
        self.model = model.to(device).eval()
        self.name = type(model).__name__
        self.cfg = cfg
        self.classes = list(classes)

    def clip_reader(self) -> ClipReader:
        """A checkpoint reads videos exactly as its evaluation does (frame sampler, ``data.decode_size``, crop)."""
        if self.cfg is None:
            return super().clip_reader()
        from vidrec.data.build import build_reader

        cfg = self.cfg
        spec = input_spec_of(self.model)
        if self.num_frames != (cfg.data.num_frames or spec.num_frames):
            cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"num_frames": self.num_frames})})
        return build_reader(cfg, spec, self.classes, train=False)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "checkpoint",
            "source": self.source,
            "model": self.name,
            "num_frames": self.num_frames,
            "dim": int(getattr(self.model, "num_features", 0)),
        }

    @torch.inference_mode()
    def encode(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[list[int]]]:
        x = self.preprocess(frames)
        with autocast(self.device):
            feats = self.model.forward_features(x)  # type: ignore[operator]
        v = F.normalize(feats.float(), dim=-1)
        return v, v[:, None], [list(range(frames.shape[1]))]


def is_checkpoint_dir(path: Path) -> bool:
    return path.is_dir() and all((path / n).is_file() for n in ("model.safetensors", "config.yaml", "classes.json"))


def _default_source() -> str:
    """The default CLIP when --model is not given: usable only if it is in the local hub cache."""
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(DEFAULT_HUB_ID, "config.json")
        if isinstance(hit, str):
            return DEFAULT_HUB_ID
    except Exception:  # noqa: BLE001 - no cache is the same as no model
        pass
    from vidrec.models.weights import _env_offline, host_reachable

    if not _env_offline() and host_reachable("huggingface.co"):
        return DEFAULT_HUB_ID
    raise EncoderError(
        f"no --model given and {DEFAULT_HUB_ID} is neither cached nor reachable (offline): {NO_MODEL_HELP}"
    )


def load_encoder(
    model: str | os.PathLike[str] | None = None,
    *,
    num_frames: int | None = None,
    merge: str | None = None,
    merge_layers: str | Sequence[int] | None = None,
    merge_keep: float | None = None,
    fusion: str | None = None,
    device: str | torch.device = "auto",
) -> Encoder:
    """Load the encoder named by ``model`` (checkpoint dir, CLIP dir or hub id; ``None``: default CLIP).

    ``num_frames`` / ``merge*`` / ``fusion`` override the CLIP video settings (``merge="off"``
    gives plain per-frame CLIP). A checkpoint keeps its own settings except ``num_frames``.
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    source = str(model) if model is not None else _default_source()
    path = Path(source).expanduser()
    if path.exists() and path.is_file():
        raise EncoderError(f"--model {source}: a file; {NO_MODEL_HELP}")
    options: dict[str, Any] = {
        k: v
        for k, v in dict(
            num_frames=num_frames, merge=merge, merge_layers=merge_layers, merge_keep=merge_keep, fusion=fusion
        ).items()
        if v is not None
    }
    if path.exists():
        path = path.resolve()  # the store records where to reload the encoder from, whatever the cwd
    if is_checkpoint_dir(path):
        from vidrec.engine.checkpoint import load_checkpoint

        ck = load_checkpoint(path)
        net = ck.model
        w = (path / "model.safetensors").stat()
        src = f"checkpoint:{path}@{w.st_size}-{w.st_mtime_ns}"  # retrained weights are another encoder
        if isinstance(net, VideoCLIP):
            if "num_frames" in options:
                net.num_frames = int(options["num_frames"])
            if "merge" in options or "merge_layers" in options or "merge_keep" in options:
                net.set_merge_schedule(
                    options.get("merge", "-".join(map(str, net.merge_frames)) or "off"),
                    merge_layers=options.get("merge_layers"),
                    merge_keep=options.get("merge_keep", 0.5),
                )
            if "fusion" in options and options["fusion"] != net.fusion.kind:
                raise EncoderError(
                    f"--model {source}: the checkpoint's fusion head is {net.fusion.kind}; it cannot be changed"
                )
            return ClipEncoder(net, source=src, options={**options, "model": str(path)}, device=dev)
        if any(k in options for k in ("merge", "merge_layers", "merge_keep", "fusion")):
            raise EncoderError(
                f"--model {source}: a classifier checkpoint has no temporal merging or fusion options; drop --merge"
            )
        if not hasattr(net, "forward_features"):
            raise EncoderError(f"{path}: the checkpoint's model has no forward_features; it cannot embed videos")
        if "num_frames" in options:
            from dataclasses import replace

            classifier = cast(VideoClassifier, net)  # a checkpoint model with forward_features
            classifier.input_spec = replace(input_spec_of(net), num_frames=int(options["num_frames"]))
        return ClassifierEncoder(
            net, source=src, options={**options, "model": str(path)}, device=dev, cfg=ck.cfg, classes=ck.classes
        )
    if path.is_dir() and not (path / "config.json").is_file():
        raise EncoderError(
            f"--model {source}: the directory is neither a vidrec checkpoint nor a CLIP from_pretrained directory; "
            f"{NO_MODEL_HELP}"
        )
    kwargs: dict[str, Any] = {"clip": source}
    if "num_frames" in options:
        kwargs["num_frames"] = int(options["num_frames"])
    if "merge" in options:
        kwargs["merge"] = options["merge"]
    if "merge_layers" in options:
        kwargs["merge_layers"] = options["merge_layers"]
    if "merge_keep" in options:
        kwargs["merge_keep"] = options["merge_keep"]
    if "fusion" in options:
        kwargs["fusion"] = options["fusion"]
    try:
        clip_net = clip_video(num_classes=0, **kwargs)
    except UnsafeFileError as exc:  # a hostile file: say so, and nothing else
        raise EncoderError(f"--model {source}: {exc}") from None
    except WeightsError as exc:
        raise EncoderError(f"--model {source}: {exc}. {NO_MODEL_HELP}") from exc
    return ClipEncoder(
        clip_net,
        source=clip_net.source,
        options={**options, "model": str(path) if path.exists() else source},
        device=dev,
    )


def encoder_from_record(
    desc: dict[str, Any], options: dict[str, Any], *, device: str | torch.device = "auto"
) -> Encoder:
    """Rebuild the encoder a store recorded (to embed queries with the same model)."""
    opts = dict(options or {})
    model = opts.pop("model", None)
    src = str(desc.get("source", ""))
    if not model:
        if src.startswith("hub:"):
            model = src.split(":", 1)[1]
        elif src.startswith(("dir:", "checkpoint:")):
            model = src.split(":", 1)[1].rsplit("@", 1)[0]
        else:
            raise EncoderError(
                f"the store's encoder ({src or 'unknown'}) cannot be reloaded; pass the encoder explicitly"
            )
    enc = load_encoder(model, device=device, **{k: v for k, v in opts.items() if k in _OPTION_KEYS})
    if enc.describe() != desc:
        diff = "; ".join(description_diff(desc, enc.describe()))
        raise EncoderError(
            f"the model at {model} is no longer the encoder that built this store ({diff}); re-embed or restore it"
        )
    return enc


_OPTION_KEYS = ("num_frames", "merge", "merge_layers", "merge_keep", "fusion")


def description_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    keys = sorted(set(a) | set(b))
    return [f"{k}: {json.dumps(a.get(k))} vs {json.dumps(b.get(k))}" for k in keys if a.get(k) != b.get(k)]
