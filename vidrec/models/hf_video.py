"""Hugging Face video transformers (VideoMAE, TimeSformer, ViViT) behind vidrec's interface.

Selected as ``model.name: hf:<hub id or from_pretrained directory>``::

    video (B, C, T, H, W)
      │  permute                           (B, T, C, H, W)   what the HF models take as pixel_values
    <Model>ForVideoClassification with its classifier replaced by Identity
      │  (pooling is the model's own: mean + fc_norm for VideoMAE, [CLS] for TimeSformer / ViViT)
    features                               (B, D)            ← forward_features
      │  dropout → the model's classifier, resized to num_classes (ignore_mismatched_sizes)
    logits                                 (B, num_classes)

The frame count, image size and normalisation come from the checkpoint: ``config.json``
(``num_frames``, ``image_size``) and ``video_preprocessor_config.json`` / ``preprocessor_config.json``
(``image_mean``, ``image_std``), exposed as the model's ``input_spec`` so data loading follows it.
VideoMAE and ViViT need exactly that frame count and size; a clip that differs is refused with a
message naming ``data.num_frames`` / ``data.image_size``.
"""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path
from typing import Any, Iterator, Literal

import torch
from torch import nn

from vidrec.errors import ConfigError, UnsafeFileError, WeightsError
from vidrec.models.base import IMAGENET_MEAN, IMAGENET_STD, InputSpec, VideoClassifier
from vidrec.models.registry import PretrainedCfg, build_variant, register_model

log = logging.getLogger(__name__)

# Normalisation when a checkpoint ships no processor config: the processors' defaults per family.
DEFAULT_NORM: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "videomae": (IMAGENET_MEAN, IMAGENET_STD),
    "timesformer": ((0.45, 0.45, 0.45), (0.225, 0.225, 0.225)),
    "vivit": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
ModelType = Literal["videomae", "timesformer", "vivit"]
SUPPORTED = tuple(DEFAULT_NORM)
FIXED_SHAPE = ("videomae", "vivit")  # fixed position embeddings: frames and size must match the config
_PROCESSOR_FILES = ("video_preprocessor_config.json", "preprocessor_config.json")
# A transformers *ForVideoClassification (VideoMAE, TimeSformer, ViViT): its config and classifier are read by
# attribute, which nn.Module.__getattr__ types as Tensor | Module, and the three classes share no typed base.
HFNet = Any


def _as_int(size: Any) -> int:
    if isinstance(size, (list, tuple)):
        return int(size[0])
    if isinstance(size, dict):
        return int(size.get("height") or size.get("shortest_edge") or next(iter(size.values())))
    return int(size)


def _read_norm(files: list[Path], model_type: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if "image_mean" in data and "image_std" in data:
            return tuple(map(float, data["image_mean"])), tuple(map(float, data["image_std"]))
    return DEFAULT_NORM.get(model_type, (IMAGENET_MEAN, IMAGENET_STD))


def _processor_files(name_or_path: str, local: bool) -> list[Path]:
    if local:
        return [Path(name_or_path) / n for n in _PROCESSOR_FILES if (Path(name_or_path) / n).is_file()]
    from huggingface_hub import try_to_load_from_cache

    out = []
    for n in _PROCESSOR_FILES:
        hit = try_to_load_from_cache(name_or_path, n)
        if isinstance(hit, str):
            out.append(Path(hit))
    return out


class HFVideoClassifier(VideoClassifier):
    """A ``transformers`` video classifier whose classifier is vidrec's ``head``."""

    def __init__(self, net: HFNet, *, num_classes: int, input_spec: InputSpec, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = net
        self.model_type: str = net.config.model_type
        head = net.classifier
        if not isinstance(head, nn.Linear):
            raise WeightsError(f"hf: {type(net).__name__} has no linear classifier to resize")
        self.head = head
        net.classifier = nn.Identity()  # the net now returns pooled features as "logits"
        self.drop = nn.Dropout(dropout)
        self.num_features = head.in_features
        self.num_classes = num_classes
        self.input_spec = input_spec

    def _check_shape(self, video: torch.Tensor) -> None:
        if self.model_type not in FIXED_SHAPE:
            return
        t, h, w = video.shape[2:]
        spec = self.input_spec
        if t != spec.num_frames or h != spec.image_size or w != spec.image_size:
            raise ConfigError(
                f"{self.model_type} expects clips of {spec.num_frames} frames at {spec.image_size}x{spec.image_size} "
                f"(its config), got {t} frames at {h}x{w}: set data.num_frames={spec.num_frames} "
                f"data.image_size={spec.image_size}"
            )

    def forward_features(self, video: torch.Tensor, **side: torch.Tensor) -> torch.Tensor:
        self._check_shape(video)
        pixel_values = video.permute(0, 2, 1, 3, 4)  # (B, C, T, H, W) → (B, T, C, H, W)
        return self.net(pixel_values=pixel_values).logits  # (B, D): classifier is Identity

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        return self.net.parameters()  # the head lives outside ``net``

    @classmethod
    def from_hub(
        cls, *, name_or_path: str, num_classes: int, pretrained: bool = True, dropout: float = 0.0
    ) -> HFVideoClassifier:
        """Load a VideoMAE / TimeSformer / ViViT checkpoint from a directory or the hub, head resized
        (``pretrained`` is implied: the weights come with the checkpoint)."""
        from transformers import AutoConfig

        if not name_or_path:
            raise ConfigError(
                "model.name: 'hf:' needs a hub id or a directory, e.g. hf:MCG-NJU/videomae-base or hf:./my_videomae"
            )
        path = Path(name_or_path).expanduser()
        local = path.is_dir()
        looks_local = name_or_path.startswith((".", "/", "~")) or path.exists() or name_or_path.count("/") > 1
        if not local and looks_local:
            raise WeightsError(
                f"model.name: hf:{name_or_path}: no such directory (a from_pretrained directory with config.json)"
            )
        if local and not (path / "config.json").is_file():
            raise WeightsError(
                f"model.name: hf:{name_or_path}: {path / 'config.json'} is missing; not a from_pretrained directory"
            )
        source = str(path) if local else name_or_path
        if not local:
            try:  # a model downloaded before is in the hub cache: no network needed
                AutoConfig.from_pretrained(source, local_files_only=True)
            except (OSError, ValueError):
                from vidrec.models.weights import require_online

                require_online(
                    f"hf:{source}",
                    what="model.name",
                    hint=f"name the directory: model.name=hf:DIR (e.g. after `hf download {source} --local-dir DIR`); "
                    "model.weights=PATH also loads weights into another hf:DIR of the same architecture",
                )
        config = AutoConfig.from_pretrained(source, local_files_only=local)
        if config.model_type not in SUPPORTED:
            raise WeightsError(
                f"model.name: hf:{name_or_path} is a {config.model_type!r} model; supported: {', '.join(SUPPORTED)}"
            )
        net = _from_pretrained(source, local=local, num_labels=num_classes)
        mean, std = _read_norm(_processor_files(source, local), config.model_type)
        spec = InputSpec(
            num_frames=int(config.num_frames),
            image_size=_as_int(config.image_size),
            mean=tuple(mean),  # type: ignore[arg-type]
            std=tuple(std),  # type: ignore[arg-type]
        )
        return cls(net, num_classes=num_classes, input_spec=spec, dropout=dropout)

    @classmethod
    def from_config(
        cls,
        *,
        model_type: ModelType,
        num_classes: int,
        num_frames: int = 8,
        image_size: int = 112,
        hidden_size: int = 192,
        depth: int = 4,
        num_heads: int = 3,
        dropout: float = 0.0,
    ) -> HFVideoClassifier:
        """The architecture from a config, random-initialised (offline, CPU-sized): patch / tubelet 16 (×2)."""
        import transformers as tf

        if hidden_size % num_heads:
            raise ConfigError(f"model.hidden_size ({hidden_size}) must be divisible by model.num_heads ({num_heads})")
        if image_size % 16:
            raise ConfigError(f"model.image_size ({image_size}) must be a multiple of the patch size 16")
        common: dict[str, Any] = {
            "image_size": image_size,
            "num_frames": num_frames,
            "hidden_size": hidden_size,
            "num_hidden_layers": depth,
            "num_attention_heads": num_heads,
            "intermediate_size": 4 * hidden_size,
            "num_labels": num_classes,
        }
        net: HFNet
        if model_type == "videomae":
            if num_frames % 2:
                raise ConfigError(f"model.num_frames ({num_frames}) must be even (VideoMAE tubelets span 2 frames)")
            net = tf.VideoMAEForVideoClassification(tf.VideoMAEConfig(patch_size=16, tubelet_size=2, **common))
        elif model_type == "timesformer":
            net = tf.TimesformerForVideoClassification(tf.TimesformerConfig(patch_size=16, **common))
        else:
            if num_frames % 2:
                raise ConfigError(f"model.num_frames ({num_frames}) must be even (ViViT tubelets span 2 frames)")
            net = tf.VivitForVideoClassification(tf.VivitConfig(tubelet_size=[2, 16, 16], **common))
        mean, std = DEFAULT_NORM[model_type]
        spec = InputSpec(num_frames=num_frames, image_size=image_size, mean=mean, std=std)
        return cls(net, num_classes=num_classes, input_spec=spec, dropout=dropout)

    def read_pretrained_dir(self, path: Path) -> dict[str, torch.Tensor]:
        """Tensors of a ``from_pretrained`` directory, named as ``transformers`` names them in memory."""
        net = _from_pretrained(str(path), local=True)
        return dict(net.state_dict())

    def remap_state_dict(self, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A ``from_pretrained`` checkpoint (``videomae.*``, ``classifier.*``) → ``net.*`` / ``head.*``."""
        if any(k.startswith(("net.", "head.")) for k in sd):
            return sd
        return {
            ("head." + k[len("classifier.") :] if k.startswith("classifier.") else f"net.{k}"): v for k, v in sd.items()
        }


def _from_pretrained(source: str, *, local: bool, num_labels: int | None = None) -> nn.Module:
    """``AutoModelForVideoClassification.from_pretrained``, head resized when ``num_labels`` is given."""
    import transformers
    from transformers import AutoModelForVideoClassification

    kwargs: dict[str, Any] = {"num_labels": num_labels, "ignore_mismatched_sizes": True} if num_labels else {}
    verbosity = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()  # the "newly initialized classifier" warning is expected here
    transformers.utils.logging.disable_progress_bar()
    try:
        return AutoModelForVideoClassification.from_pretrained(source, local_files_only=local, **kwargs)
    except (OSError, ValueError) as exc:
        raise WeightsError(f"hf:{source}: cannot load ({exc})") from exc
    except pickle.UnpicklingError as exc:  # transformers reads *.bin with weights_only=True and refused it
        from vidrec.utils.io import unpickle_refusal

        weights = next(
            (Path(source) / n for n in ("pytorch_model.bin", "model.bin") if (Path(source) / n).is_file()), source
        )
        raise UnsafeFileError(unpickle_refusal(weights, exc)) from None
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()


@register_model(
    "hf:",
    prefix_match=True,
    input=InputSpec(num_frames=16, image_size=224),
    pretrained=[
        PretrainedCfg(
            "hub",
            "hf:<hub id>",
            examples=(
                "MCG-NJU/videomae-base-finetuned-kinetics",
                "facebook/timesformer-base-finetuned-k400",
                "google/vivit-b-16x2-kinetics400",
            ),
        )
    ],
    description="Hugging Face VideoMAE / TimeSformer / ViViT: hf:<hub id or from_pretrained directory>",
    constructor=HFVideoClassifier.from_hub,
)
def hf_video(**kwargs: Any) -> HFVideoClassifier:
    """A transformers video classifier; weights always come from ``name_or_path`` (``pretrained`` is implied)."""
    return build_variant("hf:", {}, **kwargs)


# --------------------------------------------------------------------------------------------
# the same architectures from a config, random-initialised: offline training and CPU-sized runs

_SMALL_SPEC = InputSpec(num_frames=8, image_size=112)


def _small(model_type: str) -> InputSpec:
    return InputSpec(_SMALL_SPEC.num_frames, _SMALL_SPEC.image_size, *DEFAULT_NORM[model_type])


@register_model("videomae_small", input=_small("videomae"), constructor=HFVideoClassifier.from_config)
def videomae_small(**kwargs: Any) -> HFVideoClassifier:
    """VideoMAE architecture from a config, random init (offline / CPU); use hf:<id> for real weights."""
    return build_variant("videomae_small", dict(model_type="videomae"), **kwargs)


@register_model("timesformer_small", input=_small("timesformer"), constructor=HFVideoClassifier.from_config)
def timesformer_small(**kwargs: Any) -> HFVideoClassifier:
    """TimeSformer (divided space-time attention) from a config, random init; hf:<id> for real weights."""
    return build_variant("timesformer_small", dict(model_type="timesformer"), **kwargs)


@register_model("vivit_small", input=_small("vivit"), constructor=HFVideoClassifier.from_config)
def vivit_small(**kwargs: Any) -> HFVideoClassifier:
    """ViViT (tubelet embedding, joint space-time attention) from a config, random init; hf:<id> for weights."""
    return build_variant("vivit_small", dict(model_type="vivit"), **kwargs)
