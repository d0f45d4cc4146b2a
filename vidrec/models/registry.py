"""The model registry: builders registered by name, with their metadata kept as data.

Usage::

    @register_model("r3d_18", input=InputSpec(num_frames=16, image_size=112),
                    pretrained={"hub": "torchvision:R3D_18_Weights.KINETICS400_V1"})
    def r3d_18(*, num_classes: int, pretrained: bool = False, **kwargs) -> VideoClassifier: ...

    model = build_model("r3d_18", num_classes=10, dropout=0.2)

Builders take keyword-only arguments; ``build_model`` refuses unknown keyword arguments with
the list of accepted ones (so a typo in ``model.*`` config keys fails before any work).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from vidrec.errors import ConfigError
from vidrec.models.base import InputSpec

Builder = Callable[..., nn.Module]

_MODEL_MODULES = (
    "vidrec.models.cnn_rnn",
    "vidrec.models.frame_avg",
    "vidrec.models.resnet3d",
    "vidrec.models.lsvit",
    "vidrec.models.hf_video",
    "vidrec.models.multistream",
    "vidrec.models.video_clip",
)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Builder
    family: str
    input: InputSpec
    pretrained: dict[str, Any] = field(default_factory=dict)  # known weights: tag -> source description
    description: str = ""
    prefix_match: bool = False  # e.g. "hf:" accepts "hf:<hub id or directory>"

    def accepted_kwargs(self) -> dict[str, inspect.Parameter]:
        sig = inspect.signature(self.builder)
        return {n: p for n, p in sig.parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}

    def accepts_var_kwargs(self) -> bool:
        return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(self.builder).parameters.values())


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    input: InputSpec | None = None,
    pretrained: dict[str, Any] | None = None,
    description: str = "",
    prefix_match: bool = False,
) -> Callable[[Builder], Builder]:
    """Register ``builder`` under ``name``. Duplicate names are refused."""

    def deco(fn: Builder) -> Builder:
        if name in _REGISTRY and _REGISTRY[name].builder is not fn:
            raise ValueError(f"model {name!r} is already registered by {_REGISTRY[name].builder.__module__}")
        family = fn.__module__.rsplit(".", 1)[-1]
        doc = description or (inspect.getdoc(fn) or "").split("\n")[0]
        _REGISTRY[name] = ModelEntry(name, fn, family, input or InputSpec(), dict(pretrained or {}), doc, prefix_match)
        return fn

    return deco


def _import_all() -> None:
    for mod in _MODEL_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def list_models() -> list[ModelEntry]:
    _import_all()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_model_entry(name: str) -> ModelEntry:
    _import_all()
    if name in _REGISTRY:
        return _REGISTRY[name]
    for entry in _REGISTRY.values():
        if entry.prefix_match and name.startswith(entry.name):
            return entry
    known = ", ".join(sorted(_REGISTRY))
    raise ConfigError(f"model.name: unknown model {name!r}; known: {known}")


def check_model_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` naming the first ``model.<key>`` the builder does not accept, or whose
    value does not have the type the builder's signature gives (``model.hidden_size=abc``)."""
    entry = get_model_entry(name)
    if not entry.accepts_var_kwargs():
        accepted = entry.accepted_kwargs()
        for key in kwargs:
            if key not in accepted:
                ok = ", ".join(sorted(k for k in accepted if k not in ("num_classes", "name_or_path")))
                raise ConfigError(f"model.{key}: not an option of model {name!r}; its options are: {ok}")
    hints = _type_hints(entry.builder)
    for key, value in kwargs.items():
        if key in hints:
            _check_type(f"model.{key}", hints[key], value, name)


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    import typing

    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve is simply not checked
        return {}


def _check_type(key: str, hint: Any, value: Any, model: str) -> None:
    from pydantic import TypeAdapter, ValidationError

    try:
        adapter = TypeAdapter(hint)
    except Exception:  # noqa: BLE001 - a type pydantic cannot check (an nn.Module, a callable) is not checked
        return
    try:
        adapter.validate_python(value, strict=isinstance(value, str) and hint in (int, float, bool))
    except ValidationError as exc:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and _valid(adapter, str(value)):
            return  # YAML read `merge: 2` as a number; the builder takes the text "2"
        msg = exc.errors()[0]["msg"] if exc.errors() else str(exc)
        raise ConfigError(f"{key}: {msg} for model {model!r} (got {value!r})") from None


def _valid(adapter: Any, value: Any) -> bool:
    from pydantic import ValidationError

    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


def build_model(name: str, *, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build a registered model. ``name`` may be a prefix entry such as ``hf:<id or dir>``."""
    entry = get_model_entry(name)
    check_model_kwargs(name, kwargs)
    if entry.prefix_match:
        kwargs["name_or_path"] = name[len(entry.name) :]
    model = entry.builder(num_classes=num_classes, **kwargs)
    return model
