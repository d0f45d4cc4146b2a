"""The options of ``vidrec embed``, from the command line and from a YAML file (``--config``).

    # embed.yaml: any of these keys; the command line wins over the file
    model: /models/clip-vit-base-patch32
    frames: 12
    merge: 2-2-2             # or off
    merge_layers: 6-8-10     # or [6, 8, 10]
    merge_keep: [0.3, 0.7, 0.7]   # or one value
    fusion: meanP            # or seqTransf
    segments: window         # or frame
    window_seconds: 4
    stride_seconds: 2
    batch_size: 8

Light (no torch): the file is checked before any model is loaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vidrec.errors import ConfigError


def parse_keep(value: Any) -> float | list[float] | None:
    """``0.5`` / ``"0.3-0.7"`` / ``"0.3,0.7"`` / ``[0.3, 0.7]`` → a proportion or one per merge stage."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return None if value is None else float(value)
    if isinstance(value, str):
        parts = [p for p in value.replace(",", "-").split("-") if p.strip()]
        try:
            nums = [float(p) for p in parts]
        except ValueError:
            raise ValueError(
                f"{value!r}: expected a proportion such as 0.5, or one per stage such as 0.3-0.7"
            ) from None
        return nums[0] if len(nums) == 1 else nums
    if isinstance(value, (list, tuple)):
        return [float(v) for v in value]
    raise ValueError(f"{value!r}: expected a proportion such as 0.5, or a list of them")


def parse_layers(value: Any) -> str | list[int] | None:
    """``"6-8-10"`` / ``"6,8,10"`` / ``[6, 8, 10]`` → the merge layers (checked by the model)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) for v in value):
        return list(value)
    raise ValueError(f"{value!r}: expected layer numbers such as 6-8-10 or [6, 8, 10]")


class EmbedOptions(BaseModel):
    """What ``vidrec embed`` does, besides which folder and which store (``None``: the default)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: Optional[str] = None  # CLIP dir, vidrec checkpoint dir or hub id
    frames: Optional[int] = Field(None, ge=1)  # frames sampled per video (or per window)
    merge: Optional[str] = None  # TempMe schedule such as 2-2-2, or off
    merge_layers: Optional[Union[str, list[int]]] = None  # layers before which each stage merges
    merge_keep: Optional[Union[float, list[float]]] = None  # proportion of a group's tokens kept (one, or per stage)
    fusion: Optional[Literal["meanP", "seqTransf"]] = None  # temporal fusion head
    segments: Optional[Literal["frame", "window"]] = None  # per sampled frame/clip, or per window
    window_seconds: Optional[float] = Field(None, gt=0)
    stride_seconds: Optional[float] = Field(None, gt=0)  # window start to start (default: the window: no overlap)
    batch_size: Optional[int] = Field(None, ge=1)
    workers: Optional[int] = Field(None, ge=0)
    device: Optional[str] = None

    @field_validator("merge", mode="before")
    @classmethod
    def _merge(cls, v: Any) -> Any:
        if v is False:  # YAML's `off` without quotes
            return "off"
        return str(v) if isinstance(v, int) else v

    @field_validator("merge_keep", mode="before")
    @classmethod
    def _keep(cls, v: Any) -> Any:
        return parse_keep(v)

    @field_validator("merge_layers", mode="before")
    @classmethod
    def _layers(cls, v: Any) -> Any:
        return parse_layers(v)

    @field_validator("merge_keep")
    @classmethod
    def _keep_range(cls, v: Any) -> Any:
        for k in [v] if isinstance(v, float) else (v or []):
            if not 0 < k <= 1:
                raise ValueError(f"{k}: a proportion in (0, 1]")
        return v

    def encoder_kwargs(self) -> dict[str, Any]:
        """The options :func:`vidrec.embed.encoders.load_encoder` takes, set ones only."""
        out = {
            "num_frames": self.frames,
            "merge": self.merge,
            "merge_layers": self.merge_layers,
            "merge_keep": self.merge_keep,
            "fusion": self.fusion,
        }
        return {k: v for k, v in out.items() if v is not None}


def _errors(exc: ValidationError, where: str) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "?"
    if err["type"] == "extra_forbidden":
        return f"{where}{key}: unknown option; the options are: {', '.join(EmbedOptions.model_fields)}"
    return f"{where}{key}: {err['msg']} (got {err.get('input')!r})"


def embed_options(config: str | os.PathLike[str] | None = None, **given: Any) -> EmbedOptions:
    """The options of a run: ``config`` (YAML), then the ``given`` ones that are not ``None``."""
    tree: dict[str, Any] = {}
    where = ""
    if config is not None:
        import yaml

        path = Path(config)
        if not path.is_file():
            raise ConfigError(f"--config {path}: no such file (a YAML of embed options: model, frames, merge, ...)")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"--config {path}: not a readable YAML file ({' '.join(str(exc).split())[:200]})"
            ) from None
        if not isinstance(data, dict):
            raise ConfigError(
                f"--config {path}: expected a mapping of options (model: ..., frames: ...), got {type(data).__name__}"
            )
        tree = {str(k).replace("-", "_"): v for k, v in data.items()}
        if "num_frames" in tree and "frames" not in tree:
            tree["frames"] = tree.pop("num_frames")
        where = f"--config {path}: "
    try:
        opts = EmbedOptions(**tree)
    except ValidationError as exc:
        raise ConfigError(_errors(exc, where)) from None
    cli = {k: v for k, v in given.items() if v is not None}
    try:
        return EmbedOptions(**{**opts.model_dump(exclude_none=True), **cli})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(_errors(exc, "--" if str(err["loc"][0]) in cli else where).replace("_", "-", 0)) from None
