"""CLIP video encoder: per-frame CLIP ViT with temporal token merging and temporal prompts.

The vision tower of a ``transformers`` ``CLIPModel`` encodes the sampled frames; its encoder
layers are run here one by one so that tokens can be merged and prompts inserted between them::

    video (B, C, T, H, W)
      │  patch embedding + CLS (+ position)            per frame, CLIP's own
      │  [layer p] + temporal prompts (STOP)          K tokens per frame from inter-frame differences
      │  layers 0 .. L-1 of the CLIP ViT
      │    before layer l_i (merge_layers, e.g. 6, 8, 10):
      │      group m_i neighbouring clips (merge_frames, e.g. 2-2-2), concatenate their patch
      │      tokens, reduce them by bipartite soft matching (ToMe) to merge_keep of the
      │      concatenation; CLS / prompt tokens of the group are averaged    (TempMe)
      │  CLS → post LayerNorm → visual projection    (B, T', E)   T' = clips left after merging
      │  fusion: meanP (mean over clips) | seqTransf (temporal transformer, residual)
      ▼
    video embedding (B, E)         text: CLIP text tower → projection (N, E)

With ``merge_frames=()`` (or ``merge="off"``) and ``num_prompts=0`` every frame embedding is
exactly ``CLIPModel.get_image_features`` of that frame (same modules, same order).

Weights: ``clip=`` a ``from_pretrained`` directory or a hub id (e.g. ``openai/clip-vit-base-patch32``);
without one the towers are random-initialised from ``arch`` (``b32``: ViT-B/32 shapes; ``tiny``:
for tests and demos). A directory without tokenizer files gets :class:`HashTokenizer`.

This module is the model and its builders; the towers' loading is :mod:`vidrec.models.clip_towers` and the
temporal layers (merging, prompts, fusion) are :mod:`vidrec.models.clip_temporal`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Sequence

import torch
from torch import nn

from vidrec.errors import ConfigError
from vidrec.models.base import InputSpec, VideoClassifier
from vidrec.models.clip_temporal import (
    TemporalFusion,
    TemporalPrompts,
    bipartite_soft_matching,
    default_merge_layers,
    parse_schedule,
)
from vidrec.models.clip_towers import (
    CLIP_MEAN,
    CLIP_STD,
    DEFAULT_HUB_ID,
    ClipModel,
    HashTokenizer,
    load_clip,
    tiny_clip_config,
)
from vidrec.models.registry import PretrainedCfg, build_variant, register_model

log = logging.getLogger(__name__)

TrainMode = Literal["joint", "merge_only", "prompt_only", "sequential"]

# Re-exported: the CLIP video API, importable from here as before the towers and the temporal layers had modules
# of their own.
__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "DEFAULT_HUB_ID",
    "HashTokenizer",
    "TemporalFusion",
    "TemporalPrompts",
    "TrainMode",
    "VideoCLIP",
    "VideoEncoding",
    "bipartite_soft_matching",
    "clip_video",
    "clip_video_tiny",
    "default_merge_layers",
    "load_clip",
    "parse_schedule",
    "tiny_clip_config",
]


# --------------------------------------------------------------------------------------------
# the model


@dataclass
class VideoEncoding:
    video: torch.Tensor  # (B, E) fused video embedding (not normalised)
    clips: torch.Tensor  # (B, T', E) per clip (a frame when nothing merged) after fusion
    groups: list[list[int]]  # for each of the T' clips: positions of the sampled frames it covers


class VideoCLIP(VideoClassifier):
    """CLIP towers + temporal merging, temporal prompts and a fusion head (see the module doc)."""

    def __init__(
        self,
        clip_model: ClipModel,
        tokenizer: Any,
        *,
        num_classes: int = 0,
        num_frames: int = 12,
        merge_frames: Sequence[int] = (2, 2, 2),
        merge_layers: Sequence[int] | None = None,
        merge_keep: float | Sequence[float] = 0.5,
        num_prompts: int = 0,
        prompt_layer: int = 0,
        fusion: str = "meanP",
        fusion_layers: int = 2,
        source: str = "random",
    ) -> None:
        super().__init__()
        self.clip: ClipModel = clip_model
        self.tokenizer = tokenizer
        self.source = source
        vcfg = self.clip.config.vision_config
        num_layers = len(self.clip.vision_model.encoder.layers)
        dim = vcfg.hidden_size
        self.embed_dim = int(self.clip.config.projection_dim)
        self.num_features = self.embed_dim
        self.num_frames = num_frames
        self.merge_frames = tuple(int(m) for m in merge_frames)
        if any(m < 1 for m in self.merge_frames):
            raise ConfigError(f"model.merge_frames: {self.merge_frames} must be positive frame counts, e.g. 2-2-2")
        self.merge_layers = tuple(int(v) for v in (merge_layers or ()))
        if len(self.merge_layers) != len(self.merge_frames):
            raise ConfigError(
                f"model.merge_layers: {list(self.merge_layers)} must name one layer per merge stage {self.merge_frames}"
            )
        keep = (merge_keep,) * len(self.merge_frames) if isinstance(merge_keep, (int, float)) else tuple(merge_keep)
        if len(keep) != len(self.merge_frames) or not all(0 < k <= 1 for k in keep):
            raise ConfigError(
                f"model.merge_keep: {merge_keep!r}: one proportion in (0, 1] per merge layer ({len(self.merge_frames)})"
            )
        self.merge_keep = tuple(float(k) for k in keep)
        # TempMe-style temporal position of each frame inside a merged group (zero: plain merging).
        self.merge_pos = nn.ParameterList([nn.Parameter(torch.zeros(m, dim)) for m in self.merge_frames])
        if not 0 <= prompt_layer < num_layers:
            raise ConfigError(f"model.prompt_layer: {prompt_layer} is outside the vision tower's {num_layers} layers")
        if num_prompts and self.merge_layers and prompt_layer > self.merge_layers[0]:
            raise ConfigError(
                f"model.prompt_layer: {prompt_layer} must not come after the first merge layer {self.merge_layers[0]}"
            )
        self.prompt_layer = prompt_layer
        self.prompts = TemporalPrompts(dim, num_prompts) if num_prompts > 0 else None
        self.fusion = TemporalFusion(
            self.embed_dim, fusion, num_layers=fusion_layers, max_positions=max(64, num_frames)
        )
        self.head: nn.Module = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.num_classes = num_classes
        image_size = int(vcfg.image_size)
        self.input_spec = InputSpec(num_frames=num_frames, image_size=image_size, mean=CLIP_MEAN, std=CLIP_STD)

    def set_merge_schedule(
        self,
        merge: str | Sequence[int] | None,
        *,
        merge_layers: str | Sequence[int] | None = None,
        merge_keep: float | Sequence[float] = 0.5,
    ) -> None:
        """Change the temporal merging of a built model (``"off"``, ``"2-2-2"``, ...), e.g. to embed
        with a trained checkpoint under another schedule. Stages whose group size changes get fresh
        (zero) merge position embeddings."""
        frames = parse_schedule(merge)
        num_layers = len(self.clip.vision_model.encoder.layers)
        layers = (
            default_merge_layers(num_layers, len(frames))
            if merge_layers in (None, "auto")
            else parse_schedule(merge_layers)
        )
        if (
            len(layers) != len(frames)
            or list(layers) != sorted(set(layers))
            or (layers and (layers[0] < 1 or layers[-1] >= num_layers))
        ):
            raise ConfigError(
                f"merge_layers: {list(layers)} must be increasing layer indices in 1..{num_layers - 1}, "
                f"one per stage {frames}"
            )
        keep = (merge_keep,) * len(frames) if isinstance(merge_keep, (int, float)) else tuple(merge_keep)
        if len(keep) != len(frames) or not all(0 < k <= 1 for k in keep):
            raise ConfigError(f"merge_keep: {merge_keep!r}: one proportion in (0, 1] per merge stage")
        if self.prompts is not None and layers and self.prompt_layer > layers[0]:
            raise ConfigError(
                f"merge_layers: the first merge layer {layers[0]} comes before the prompt layer {self.prompt_layer}"
            )
        old = list(self.merge_pos)
        dim = self.clip.config.vision_config.hidden_size
        ref = next(self.clip.parameters())
        self.merge_pos = nn.ParameterList(
            [
                old[i]
                if i < len(old) and old[i].shape[0] == m
                else nn.Parameter(torch.zeros(m, dim, dtype=ref.dtype, device=ref.device))
                for i, m in enumerate(frames)
            ]
        )
        self.merge_frames, self.merge_layers, self.merge_keep = (
            tuple(frames),
            tuple(layers),
            tuple(float(k) for k in keep),
        )

    # -- settings that change embeddings (recorded by the embedding store) --------------------
    def describe(self) -> dict[str, Any]:
        return {
            "kind": "clip_video",
            "source": self.source,
            "num_frames": self.num_frames,
            "merge_frames": "-".join(map(str, self.merge_frames)) or "off",
            "merge_layers": list(self.merge_layers),
            "merge_keep": list(self.merge_keep),
            "num_prompts": self.prompts.num_prompts if self.prompts is not None else 0,
            "fusion": self.fusion.kind,
            "dim": self.embed_dim,
        }

    # -- vision ---------------------------------------------------------------------------------
    def _merge(
        self,
        x: torch.Tensor,
        size: torch.Tensor,
        groups: list[list[int]],
        stage: int,
        b: int,
        n_protected: int,
        layer: Any,  # one of the vision tower's CLIPEncoderLayers (self_attn.k_proj, layer_norm1)
    ) -> tuple[torch.Tensor, torch.Tensor, list[list[int]]]:
        m = self.merge_frames[stage]
        n = len(groups)
        s_tok, d = x.shape[1], x.shape[2]
        x = x.view(b, n, s_tok, d)  # (B, n, N, D)
        size = size.view(b, n, s_tok, 1)
        pad = (-n) % m
        if pad:  # a remainder group is completed by repeating its last clip
            x = torch.cat([x, x[:, -1:].expand(-1, pad, -1, -1)], dim=1)
            size = torch.cat([size, size[:, -1:].expand(-1, pad, -1, -1)], dim=1)
        g = (n + pad) // m
        x = x.view(b * g, m, s_tok, d)  # (B*g, m, N, D)
        size = size.view(b * g, m, s_tok, 1)
        protected = x[:, :, :n_protected].mean(dim=1)  # (B*g, n_protected, D)
        patches = x[:, :, n_protected:] + self.merge_pos[stage][None, :, None, :]  # (B*g, m, P, D)
        p = patches.shape[2]
        patches = patches.reshape(b * g, m * p, d)  # (B*g, m*P, D)
        psize = size[:, :, n_protected:].reshape(b * g, m * p, 1)
        metric = layer.self_attn.k_proj(layer.layer_norm1(patches))  # ToMe: match on attention keys
        target = max(1, round(m * p * self.merge_keep[stage]))
        while patches.shape[1] > target:
            r = min(patches.shape[1] - target, patches.shape[1] // 2)
            patches, psize, metric = bipartite_soft_matching(patches, psize, metric, r)
        x = torch.cat([protected, patches], dim=1)
        size = torch.cat([torch.ones_like(psize[:, :n_protected]), psize], dim=1)
        new_groups = []
        for i in range(g):
            members: list[int] = []
            for j in range(i * m, min(i * m + m, n)):
                members.extend(groups[j])
            new_groups.append(sorted(set(members)))
        return x, size.view(b * g, -1), new_groups

    def encode_clips(self, video: torch.Tensor) -> tuple[torch.Tensor, list[list[int]]]:
        """Per-clip image embeddings ``(B, T', E)`` and the sampled-frame positions of each clip."""
        if video.dim() != 5:
            raise ValueError(f"expected video (B, C, T, H, W), got shape {tuple(video.shape)}")
        b, c, t, h, w = video.shape
        vm = self.clip.vision_model
        px = video.transpose(1, 2).reshape(b * t, c, h, w)  # (B*T, C, H, W)
        x = vm.embeddings(px)  # (B*T, 1+P, D)
        x = vm.pre_layrnorm(x)
        groups = [[i] for i in range(t)]
        size: torch.Tensor | None = None  # token sizes (B*n, N) once something was merged
        n_protected = 1
        stage_at = {layer: i for i, layer in enumerate(self.merge_layers)}
        for li, layer in enumerate(vm.encoder.layers):
            if self.prompts is not None and li == self.prompt_layer:
                n = len(groups)
                patches = x[:, n_protected:].reshape(b, n, -1, x.shape[-1])  # (B, T, P, D)
                prompts = self.prompts(patches).reshape(b * n, -1, x.shape[-1])  # (B*T, K, D)
                x = torch.cat([x[:, :1], prompts.to(x.dtype), x[:, 1:]], dim=1)
                n_protected = 1 + self.prompts.num_prompts
            if li in stage_at:
                if size is None:
                    size = torch.ones(x.shape[0], x.shape[1], device=x.device, dtype=x.dtype)
                x, size, groups = self._merge(x, size.unsqueeze(-1), groups, stage_at[li], b, n_protected, layer)
            mask = None
            if size is not None:  # ToMe's proportional attention: a merged token counts as many
                mask = size.log()[:, None, None, :].to(x.dtype)  # (S, 1, 1, N)
            x = layer(x, mask)
        cls = vm.post_layernorm(x[:, 0])  # (B*T', D)
        emb = self.clip.visual_projection(cls)
        return emb.view(b, len(groups), -1), groups  # (B, T', E)

    def encode_video(self, video: torch.Tensor) -> VideoEncoding:
        clips, groups = self.encode_clips(video)
        positions = torch.tensor([round(sum(g) / len(g)) for g in groups], device=clips.device)
        seq, pooled = self.fusion(clips, positions)
        return VideoEncoding(video=pooled, clips=seq, groups=groups)

    def forward_features(self, video: torch.Tensor, **side: torch.Tensor) -> torch.Tensor:
        return self.encode_video(video).video

    def forward(
        self,
        video: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **side: torch.Tensor,
    ) -> Any:
        """Logits ``(B, K)``; with tokenised text, ``(video (B, E), text (N, E))`` for contrastive training."""
        if input_ids is not None:
            mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
            return self.encode_video(video).video, self.encode_text(input_ids, mask)
        return self.forward_head(self.forward_features(video))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    # -- text -----------------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str], device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        texts = list(texts)
        if isinstance(self.tokenizer, HashTokenizer):
            out = self.tokenizer(texts)
        else:
            max_len = int(self.clip.config.text_config.max_position_embeddings)
            enc = self.tokenizer(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
            out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        dev = device if device is not None else self.clip.text_projection.weight.device
        return {k: v.to(dev) for k, v in out.items()}

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Text embeddings ``(N, E)``: the text tower's state at the last real token (EOS), projected."""
        out = self.clip.text_model(input_ids=input_ids, attention_mask=attention_mask)
        last = out.last_hidden_state  # (N, L, D), final LayerNorm applied
        eos = attention_mask.long().sum(dim=1) - 1
        pooled = last[torch.arange(last.shape[0], device=last.device), eos]
        return self.clip.text_projection(pooled)

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        tok = self.tokenize(texts)
        return self.encode_text(tok["input_ids"], tok["attention_mask"])

    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale.exp().clamp(max=100)

    def temperature_parameter(self) -> nn.Parameter:
        """The learnable log logit scale (``log(1 / temperature)``) of the contrastive loss."""
        return self.clip.logit_scale

    # -- training -------------------------------------------------------------------------------
    def module_parameters(self, which: str) -> Iterator[nn.Parameter]:
        if which == "clip":
            yield from self.clip.parameters()
        elif which == "merge":
            yield from self.merge_pos.parameters()
        elif which == "prompt":
            if self.prompts is not None:
                yield from self.prompts.parameters()
        elif which == "fusion":
            yield from self.fusion.parameters()
            yield from self.head.parameters()
        else:
            raise ValueError(which)

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        return self.module_parameters("clip")

    def trainable_modules(self, mode: TrainMode, *, epoch: int = 0, epochs: int = 1) -> tuple[str, ...]:
        """Which parameter sets train in ``mode`` (``sequential``: merge first half, prompts second)."""
        if mode == "joint":
            return ("clip", "merge", "prompt", "fusion")
        if mode == "merge_only":
            return ("merge", "fusion")
        if mode == "prompt_only":
            return ("prompt", "fusion")
        if mode == "sequential":
            return ("merge", "fusion") if epoch < max(1, epochs // 2) else ("prompt", "fusion")
        raise ConfigError(f"retrieval.mode: {mode!r}; use joint, merge_only, prompt_only or sequential")

    def set_training_mode(self, mode: TrainMode, *, epoch: int = 0, epochs: int = 1) -> tuple[str, ...]:
        """Freeze everything outside ``mode``'s parameter sets (call at each epoch start)."""
        active = self.trainable_modules(mode, epoch=epoch, epochs=epochs)
        for which in ("clip", "merge", "prompt", "fusion"):
            for p in self.module_parameters(which):
                p.requires_grad_(which in active)
        return active

    def param_groups(
        self,
        mode: TrainMode,
        *,
        clip_lr: float,
        module_lr: float,
        weight_decay: float = 0.0,
        merge_lr: float | None = None,
        prompt_lr: float | None = None,
    ) -> list[dict[str, Any]]:
        """Optimizer groups: CLIP towers at ``clip_lr``, new modules at ``module_lr``; token merging
        (``merge``) and temporal prompts (``prompt``) get groups of their own when ``merge_lr`` /
        ``prompt_lr`` are given (seed 003 trained TempMe and STOP at different rates).

        ``sequential`` returns every set it will train; :meth:`set_training_mode` switches which
        ones get gradients, so one optimizer serves both stages.
        """
        sets = set(self.trainable_modules(mode, epoch=0, epochs=2)) | set(
            self.trainable_modules(mode, epoch=1, epochs=2)
        )
        groups = []
        if "clip" in sets:
            groups.append(
                {
                    "params": list(self.module_parameters("clip")),
                    "lr": clip_lr,
                    "weight_decay": weight_decay,
                    "name": "clip",
                }
            )
        own = {"merge": merge_lr, "prompt": prompt_lr}
        for which, lr in own.items():
            if lr is not None and which in sets:
                groups.append(
                    {
                        "params": list(self.module_parameters(which)),
                        "lr": lr,
                        "weight_decay": weight_decay,
                        "name": which,
                    }
                )
        new = [
            p
            for w in ("merge", "prompt", "fusion")
            if w in sets and own.get(w) is None
            for p in self.module_parameters(w)
        ]
        groups.append({"params": new, "lr": module_lr, "weight_decay": weight_decay, "name": "modules"})
        return [g for g in groups if g["params"]]

    @classmethod
    def create(
        cls,
        *,
        num_classes: int = 0,
        clip: str | None = None,
        pretrained: bool = False,
        arch: Literal["b32", "tiny"] = "b32",
        num_frames: int = 12,
        image_size: int = 32,
        merge: str | int | Sequence[int] | None = "2-2-2",
        merge_layers: str | int | Sequence[int] | None = None,
        merge_keep: float | Sequence[float] = 0.5,
        num_prompts: int = 0,
        prompt_layer: int = 0,
        fusion: str = "meanP",
        fusion_layers: int = 2,
    ) -> VideoCLIP:
        """CLIP towers from ``clip`` (a from_pretrained dir or hub id; ``pretrained``: OpenAI's ViT-B/32) or
        random from ``arch`` (``image_size`` only for ``tiny``); ``merge``: frames merged per stage (``2-2-2``,
        ``off``); ``merge_layers``: layers that merge (default 6-8-10 on 12 layers); ``merge_keep``: proportion
        of a group's concatenated patch tokens kept; ``num_prompts``: STOP temporal prompts per frame (0: off);
        ``fusion``: meanP | seqTransf."""
        from transformers import CLIPConfig, CLIPModel

        if clip is None and pretrained:
            clip = DEFAULT_HUB_ID
        if clip is not None:
            model, tokenizer, source = load_clip(clip)
        else:
            if arch == "tiny":
                if image_size % 4:
                    raise ConfigError(f"model.image_size: {image_size} must be a multiple of 4 (4×4 patches)")
                config = tiny_clip_config(image_size=image_size, patch_size=image_size // 4)
            elif arch == "b32":
                config = CLIPConfig()  # transformers' defaults are ViT-B/32's shapes
            else:
                raise ConfigError(f"model.arch: {arch!r}; use b32 or tiny (or give model.clip=DIR_OR_HUB_ID)")
            model = CLIPModel(config)
            tokenizer = HashTokenizer(config.text_config.vocab_size, config.text_config.max_position_embeddings)
            source = f"random:{arch}"
        frames = parse_schedule(merge)
        num_layers = len(model.vision_model.encoder.layers)
        if merge_layers is None or merge_layers == "auto":
            layers = default_merge_layers(num_layers, len(frames))
        else:
            layers = parse_schedule(merge_layers) if not isinstance(merge_layers, str) or merge_layers else ()
        if len(layers) != len(frames):
            raise ConfigError(
                f"model.merge_layers: {list(layers)} must name one layer per merge stage ({'-'.join(map(str, frames))})"
            )
        if list(layers) != sorted(set(layers)) or (layers and (layers[0] < 1 or layers[-1] >= num_layers)):
            raise ConfigError(
                f"model.merge_layers: {list(layers)} must be increasing layer indices in 1..{num_layers - 1}"
            )
        return cls(
            model,
            tokenizer,
            num_classes=num_classes,
            num_frames=num_frames,
            merge_frames=frames,
            merge_layers=layers,
            merge_keep=merge_keep,
            num_prompts=num_prompts,
            prompt_layer=prompt_layer,
            fusion=fusion,
            fusion_layers=fusion_layers,
            source=source,
        )

    def remap_state_dict(self, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Accept a bare ``CLIPModel`` state dict (``model.weights`` = a CLIP safetensors file)."""
        if any(k.startswith(("vision_model.", "text_model.")) for k in sd):
            return {f"clip.{k}": v for k, v in sd.items()}
        return sd


@register_model(
    "clip_video",
    input=InputSpec(num_frames=12, image_size=224, mean=CLIP_MEAN, std=CLIP_STD),
    pretrained=[PretrainedCfg("openai", f"hf:{DEFAULT_HUB_ID}", image_size=224, mean=CLIP_MEAN, std=CLIP_STD)],
    description="CLIP ViT video encoder with TempMe token merging, STOP temporal prompts, meanP/seqTransf fusion",
    constructor=VideoCLIP.create,
)
def clip_video(**kwargs: Any) -> VideoCLIP:
    """CLIP video encoder: OpenAI's ViT-B/32 towers (``model.clip`` or ``pretrained``), TempMe merging 2-2-2."""
    return build_variant("clip_video", {}, **kwargs)


@register_model(
    "clip_video_tiny",
    input=InputSpec(num_frames=8, image_size=32, mean=CLIP_MEAN, std=CLIP_STD),
    description="a tiny random CLIP video encoder (tests, synthetic retrieval demo)",
    constructor=VideoCLIP.create,
)
def clip_video_tiny(**kwargs: Any) -> VideoCLIP:
    """A 4-layer, 32-wide CLIP, 4×4 patches of ``image_size`` px (random init, HashTokenizer)."""
    model_args = dict(arch="tiny", num_frames=8, image_size=32, merge="2-2", num_prompts=2, fusion_layers=1)
    return build_variant("clip_video_tiny", model_args, **kwargs)
