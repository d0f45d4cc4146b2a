"""The model registry, timm's way: one builder per variant, registered by name, with the model class,
its expected input and its known weights kept beside it as data.

A builder is a ``model_args`` dict and one :func:`build_variant` call::

    @register_model("r3d_18", input=_SPEC, pretrained=[PretrainedCfg("kinetics400", "torchvision:...")])
    def r3d_18(**kwargs: Any) -> ResNet3D:
        \"\"\"3D ResNet-18 ...\"\"\"
        model_args = dict(block=BasicBlock, conv_makers=[Conv3DSimple] * 4, layers=[2, 2, 2, 2], stem=BasicStem)
        return build_variant("r3d_18", model_args, **kwargs)

    model = create_model("r3d_18", num_classes=10, dropout=0.2, pretrained=True)

The builder's return annotation names the model class. The options a config may set (``model.<key>``)
are the keyword parameters of the class's constructor whose types plain data can express, checked with
those types (a class or a callable, such as ``block``, is the builder's business, never the config's).
A variant's ``model_args`` are defaults like the constructor's own: ``model.depth=6`` overrides them.

``pretrained``: a constructor that takes it loads its own parts (a timm backbone named by its
``backbone`` option); for any other model :func:`build_variant` loads the entry's first
:class:`PretrainedCfg` through the model's ``remap_state_dict``.
"""

from __future__ import annotations

import collections.abc
import functools
import importlib
import inspect
import os
import pathlib
import types
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, TypeVar

from vidrec.errors import ConfigError, WeightsError
from vidrec.models.base import InputSpec

if TYPE_CHECKING:
    from torch import nn

_MODEL_MODULES = (
    "vidrec.models.cnn_rnn",
    "vidrec.models.frame_avg",
    "vidrec.models.tsm",
    "vidrec.models.resnet3d",
    "vidrec.models.slowfast",
    "vidrec.models.x3d",
    "vidrec.models.s3d",
    "vidrec.models.mvit",
    "vidrec.models.swin3d",
    "vidrec.models.lsvit",
    "vidrec.models.hf_video",
    "vidrec.models.multistream",
    "vidrec.models.video_clip",
)
# Passed by the registry itself, never a ``model.<key>``: the label count, the hub id of a prefix entry, and the
# weights switch (``model.pretrained`` is a key of its own).
_RESERVED = ("num_classes", "name_or_path", "pretrained")


@dataclass(frozen=True)
class PretrainedCfg:
    """Known weights of a model, as data: where they come from and the input they were trained with."""

    tag: str  # "kinetics400", "imagenet", ...: the name `vidrec models` shows
    source: str  # "torchvision:<WeightsEnum>.<member>", "timm:<model name>" or "hf:<hub id>"
    num_frames: int | None = None  # clip length they were trained on (None: an image model)
    image_size: int | None = None  # crop side
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    num_classes: int | None = None  # their classifier's size; another label set gets a new head
    dataset: str = ""  # what the reported accuracy is measured on
    top1: float | None = None  # reported top-1 (%) on ``dataset``
    part: str = ""  # the submodule they initialise ("" = the whole model)
    examples: tuple[str, ...] = ()  # for a hub family (hf:<id>): ids that work


@dataclass(frozen=True)
class ModelOption:
    """One ``model.<key>``: its type (checked with pydantic) and its default."""

    name: str
    annotation: Any
    default: Any

    def validate(self, value: Any, model: str) -> Any:
        from pydantic import TypeAdapter, ValidationError

        try:
            return TypeAdapter(self.annotation).validate_python(value)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"] if exc.errors() else str(exc)
            raise ConfigError(
                f"model.{self.name}: {value!r} is not a valid {_type_name(self.annotation)} for model {model!r} "
                f"({reason})"
            ) from None


@dataclass(frozen=True)
class ModelEntry:
    """A registered variant: its builder, the class it builds, its input and its known weights."""

    name: str
    builder: Callable[..., nn.Module]
    model_cls: type
    family: str  # the module that defines it
    input: InputSpec
    pretrained: dict[str, PretrainedCfg] = field(default_factory=dict)  # tag -> weights
    description: str = ""
    prefix_match: bool = False  # e.g. "hf:" accepts "hf:<hub id or directory>"
    constructor: Callable[..., nn.Module] | None = None  # what build_variant calls: the class or a classmethod

    @property
    def make(self) -> Callable[..., nn.Module]:
        return self.constructor or self.model_cls

    @property
    def default_cfg(self) -> PretrainedCfg | None:
        return next(iter(self.pretrained.values()), None)

    def options(self) -> dict[str, ModelOption]:
        """The config keys of this model: typed keyword parameters of its constructor."""
        return _options(self.make)

    def handles_pretrained(self) -> bool:
        """Whether the constructor takes ``pretrained`` (and so loads its own parts)."""
        return "pretrained" in inspect.signature(self.make).parameters


def _type_name(annotation: Any) -> str:
    return str(annotation).replace("typing.", "") if not isinstance(annotation, type) else annotation.__name__


_PLAIN = (int, float, str, bool, type(None), os.PathLike)
_CONTAINERS = (list, tuple, dict, collections.abc.Sequence, collections.abc.Mapping)


def _is_config_type(annotation: Any) -> bool:
    """Whether plain data (YAML, ``--set``) can express the type: numbers, strings, booleans, paths, literals,
    and lists / tuples / mappings / unions of them. A class or a callable is the builder's, not the config's."""
    if isinstance(annotation, type):
        return issubclass(annotation, _PLAIN) or annotation is pathlib.Path
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return True
    if origin in (typing.Union, types.UnionType) or origin in _CONTAINERS:
        return all(a is Ellipsis or _is_config_type(a) for a in typing.get_args(annotation))
    return False


@functools.cache
def _options(constructor: Callable[..., Any]) -> dict[str, ModelOption]:
    target = constructor.__init__ if isinstance(constructor, type) else constructor  # type: ignore[misc]
    hints = typing.get_type_hints(target)
    out: dict[str, ModelOption] = {}
    for name, p in inspect.signature(constructor).parameters.items():
        if p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) or name in _RESERVED:
            continue
        annotation = hints.get(name, p.annotation)
        if _is_config_type(annotation):
            out[name] = ModelOption(name, annotation, None if p.default is p.empty else p.default)
    return out


_REGISTRY: dict[str, ModelEntry] = {}


BuilderT = TypeVar("BuilderT", bound="Callable[..., nn.Module]")  # a builder keeps its own signature once registered


def register_model(
    name: str,
    *,
    input: InputSpec | None = None,
    pretrained: Iterable[PretrainedCfg] = (),
    description: str = "",
    prefix_match: bool = False,
    constructor: Callable[..., nn.Module] | None = None,
) -> Callable[[BuilderT], BuilderT]:
    """Register a builder under ``name``; its return annotation is the model class. Duplicates are refused."""

    def deco(fn: BuilderT) -> BuilderT:
        if name in _REGISTRY and _REGISTRY[name].builder is not fn:
            raise ValueError(f"model {name!r} is already registered by {_REGISTRY[name].builder.__module__}")
        model_cls = typing.get_type_hints(fn).get("return")
        if not isinstance(model_cls, type):
            raise TypeError(f"builder {fn.__qualname__} must annotate the model class it returns")
        cfgs = {c.tag: c for c in pretrained}
        doc = description or (inspect.getdoc(fn) or "").split("\n")[0]
        family = fn.__module__.rsplit(".", 1)[-1]
        spec = input or InputSpec()
        _REGISTRY[name] = ModelEntry(name, fn, model_cls, family, spec, cfgs, doc, prefix_match, constructor)
        return fn

    return deco


def build_variant(name: str, model_args: dict[str, Any], *, pretrained: bool = False, **kwargs: Any) -> Any:
    """What every builder returns: the entry's constructor with ``model_args`` overridden by ``kwargs``; with
    ``pretrained``, the entry's weights (unless the constructor loads its own parts)."""
    entry = _REGISTRY[name]
    args = {**model_args, **kwargs}
    handled = entry.handles_pretrained()
    if handled:
        args["pretrained"] = pretrained
    model = entry.make(**args)
    if pretrained and not handled:
        from vidrec.models.weights import load_pretrained

        load_pretrained(model, _default_weights(entry).source)
    return model


def _default_weights(entry: ModelEntry) -> PretrainedCfg:
    if entry.default_cfg is None:
        raise WeightsError(
            f"model.pretrained: model {entry.name!r} has no known pretrained weights; pass model.weights=PATH"
        )
    return entry.default_cfg


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


def check_model_kwargs(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Check ``model.<key>`` values against the model's constructor: names and types. Returns them validated
    (``"8"`` → ``8``, a list → the tuple the constructor takes); raises :class:`ConfigError` naming the key."""
    entry = get_model_entry(name)
    options = entry.options()
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key not in options:
            known = ", ".join(sorted(options))
            raise ConfigError(f"model.{key}: not an option of model {name!r}; its options are: {known}")
        out[key] = options[key].validate(value, name)
    return out


def create_model(
    name: str,
    *,
    num_classes: int,
    pretrained: bool = False,
    weights: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model (``name`` may be a prefix entry such as ``hf:<id or dir>``) and its weights.

    ``kwargs`` are ``model.<key>`` options, checked by :func:`check_model_kwargs`. ``pretrained`` loads the
    weights the registry lists for it (a hub; offline, from the local hub cache); ``weights`` is a local file
    or directory loaded afterwards through :func:`~vidrec.models.weights.load_weights`, so it wins over the hub.
    """
    entry = get_model_entry(name)
    kwargs = check_model_kwargs(name, kwargs)
    if pretrained:
        _default_weights(entry)  # before any work: a model without known weights says so at once
    if entry.prefix_match:
        kwargs["name_or_path"] = name[len(entry.name) :]
    model = entry.builder(num_classes=num_classes, pretrained=pretrained, **kwargs)
    if weights is not None:
        from vidrec.models.weights import load_weights

        load_weights(model, weights)
    return model
