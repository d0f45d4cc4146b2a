"""Multi-stream hand / object / context model (seed 000) on the shared interface.

Three streams, each optional, fused per frame by cross-attention and read over time by a BiLSTM::

    hand joints  (B, T, 2, 21, 3)  ─ SkeletonGNN: message passing along the 21-joint skeleton ─► (B, T, 2, hand_dim)
      + hand boxes (B, T, 2, 4)    ─ linear box embedding (the hand's place even where MediaPipe saw nothing)
    object crops (B, T, O, 3, S, S) ─ timm 2D CNN (MobileNetV2) ─────────────────────────────► (B, T, O, object_dim)
      + object boxes (B, T, O, 4)  ─ linear box embedding, slot embedding (placeholder 0000, 0001, …)
    video        (B, C, T, H, W)   ─ timm 2D CNN (ResNet-34) per frame ────────────────────────► (B, T, context_dim)
                     │
     project every token to fusion_dim; per frame t:
       query = context token (or a learned query when the context stream is off)
       keys  = [null token, hand tokens, object tokens]   (absent hands/objects masked out)
       fused = LN(query + CrossAttention(query, keys)); fused = LN(fused + MLP(fused))   (B, T, fusion_dim)
                     │
     BiLSTM over time, mean over T → features (B, 2*lstm_hidden) ← forward_features → dropout → linear → logits

Side inputs (batch keys, see ``InputSpec.side_inputs``):

- ``hand_joints`` float ``(B, T, 2, 21, 3)``: MediaPipe joints in frame coordinates normalised to
  [0, 1] (x, y) and MediaPipe's relative depth z; slot 0 = left hand, 1 = right hand.
- ``hand_joints_mask`` ``(B, T, 2)``: 1 where MediaPipe found that hand.
- ``hand_boxes`` ``(B, T, 2, 4)`` normalised xyxy and ``hand_mask`` ``(B, T, 2)``: ground-truth hand boxes.
- ``object_crops`` uint8 ``(B, T, O, 3, S, S)``: ground-truth object crops in slot order.
- ``object_boxes`` ``(B, T, O, 4)`` normalised xyxy and ``object_mask`` ``(B, T, O)``.

``streams`` chooses which streams exist (an ablation is ``--set model.streams=[context,objects]``):
a stream that is off has no parameters and its inputs are never read. ``use_boxes=False`` drops
the box embeddings, so the hand stream sees joints only and the object stream appearance only.
``stream_dropout=p`` hides, per training sample, each stream's appearance (frames → the learned
query, crops and joints → zeros) with probability ``p`` while the boxes stay: on small data this
keeps the model from memorising appearance instead of learning the motion (docs/multistream.md).
The joints and boxes are not transformed with the clip's random crop: they describe the full frame.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, Sequence, cast

import torch
import torch.nn.functional as F
from torch import nn

from vidrec.errors import ConfigError
from vidrec.models.base import IMAGENET_MEAN, IMAGENET_STD, InputSpec, VideoClassifier
from vidrec.models.registry import PretrainedCfg, build_variant, register_model

log = logging.getLogger(__name__)

STREAMS = ("hands", "objects", "context")
NUM_JOINTS = 21
NUM_HANDS = 2  # slot 0: left, slot 1: right

# MediaPipe's HAND_CONNECTIONS topology, written as data: (joint, joint) bones.
# 0 wrist; 1-4 thumb; 5-8 index; 9-12 middle; 13-16 ring; 17-20 pinky.
HAND_CONNECTIONS: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 4),  # thumb
    (0, 5), (5, 6), (6, 7), (7, 8),  # index
    (5, 9), (9, 10), (10, 11), (11, 12),  # middle (5-9: palm)
    (9, 13), (13, 14), (14, 15), (15, 16),  # ring (9-13: palm)
    (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),  # pinky (13-17, 0-17: palm)
)  # fmt: skip

HAND_SIDE_INPUTS = ("hand_joints", "hand_joints_mask", "hand_boxes", "hand_mask")
OBJECT_SIDE_INPUTS = ("object_crops", "object_boxes", "object_mask")


def hand_adjacency(edges: Sequence[tuple[int, int]] = HAND_CONNECTIONS, num_joints: int = NUM_JOINTS) -> torch.Tensor:
    """Row-normalised neighbour matrix ``(J, J)`` of the skeleton, without self loops.

    Row ``i`` averages over the joints that share a bone with ``i``; every other entry is zero,
    so one message-passing step only mixes bone neighbours.
    """
    adj = torch.zeros(num_joints, num_joints)
    for a, b in edges:
        if not (0 <= a < num_joints and 0 <= b < num_joints) or a == b:
            raise ValueError(f"bad bone ({a}, {b}) for {num_joints} joints")
        adj[a, b] = adj[b, a] = 1.0
    deg = adj.sum(dim=1, keepdim=True).clamp(min=1.0)
    return adj / deg


class SkeletonConv(nn.Module):
    """One message-passing step along bones: ``h_i' = W_self h_i + W_nbr · mean_{j ~ i} h_j``."""

    def __init__(self, in_dim: int, out_dim: int, adjacency: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("adjacency", adjacency.clone(), persistent=False)
        self.self_proj = nn.Linear(in_dim, out_dim)
        self.nbr_proj = nn.Linear(in_dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(..., J, C_in)`` → ``(..., J, C_out)``."""
        msg = torch.einsum("ij,...jc->...ic", self.adjacency.to(x.dtype), x)  # (..., J, C_in): neighbour mean
        return self.self_proj(x) + self.nbr_proj(msg)


class SkeletonBlock(nn.Module):
    """Residual message-passing block; the norm and activation act per joint, so locality holds."""

    def __init__(self, dim: int, adjacency: torch.Tensor) -> None:
        super().__init__()
        self.conv = SkeletonConv(dim, dim, adjacency)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.gelu(self.conv(self.norm(x)))


class HandSkeletonEncoder(nn.Module):
    """GNN over the hand skeleton: joints ``(..., 21, 3)`` → one vector per hand ``(..., out_dim)``.

    Each layer passes messages one bone further; joints are then mean-pooled per hand.
    """

    def __init__(self, *, hidden_dim: int = 64, out_dim: int = 128, num_layers: int = 3) -> None:
        super().__init__()
        adjacency = hand_adjacency()
        self.embed = nn.Linear(3, hidden_dim)
        self.layers = nn.ModuleList(SkeletonBlock(hidden_dim, adjacency) for _ in range(num_layers))
        self.norm = nn.LayerNorm(hidden_dim)
        self.proj = nn.Linear(hidden_dim, out_dim)
        self.out_dim = out_dim

    def joint_features(self, joints: torch.Tensor) -> torch.Tensor:
        """Per-joint features after message passing: ``(..., 21, 3)`` → ``(..., 21, hidden_dim)``."""
        x = self.embed(joints)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)

    def forward(self, joints: torch.Tensor) -> torch.Tensor:
        return self.proj(self.joint_features(joints).mean(dim=-2))  # (..., out_dim)


# A timm model: its num_features is read by attribute, which nn.Module.__getattr__ types as Tensor | Module.
TimmNet = Any


def _check_timm(name: str, key: str) -> None:
    import timm

    if not timm.is_model(name.split(".")[0]):
        close = timm.list_models(f"*{name.split('.')[0][:6]}*")[:8]
        raise ConfigError(f"model.{key}: {name!r} is not a timm model; similar: {', '.join(close) or 'none'}")


class ImageEncoder(nn.Module):
    """A timm 2D CNN with global average pooling and a projection: images ``(N, 3, H, W)`` → ``(N, out_dim)``."""

    def __init__(self, backbone: str, *, out_dim: int | None, pretrained: bool, key: str) -> None:
        super().__init__()
        import timm

        _check_timm(backbone, key)
        self.backbone_name = backbone
        self.net: TimmNet = cast(
            TimmNet, timm.create_model(backbone, pretrained=False, num_classes=0, global_pool="avg")
        )
        if pretrained:
            from vidrec.models.weights import fetch_state_dict, load_state_dict_into

            report = load_state_dict_into(self.net, fetch_state_dict(f"timm:{backbone}"), source=f"timm:{backbone}")
            log.info("%s", report.summary())
        width = int(self.net.num_features)
        self.proj: nn.Module = nn.Identity() if out_dim in (None, width) else nn.Linear(width, int(out_dim))
        self.out_dim = width if out_dim is None else int(out_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(self.net(images))


class MultiStream(VideoClassifier):
    """Hands (skeleton GNN) + objects (crop CNN) + context (frame CNN), cross-attention fusion, BiLSTM."""

    head: nn.Linear
    crop_mean: torch.Tensor  # buffers (registered in __init__ when the object stream is on)
    crop_std: torch.Tensor

    def __init__(
        self,
        *,
        num_classes: int,
        streams: Sequence[str] | str = STREAMS,
        context_backbone: str = "resnet34",
        object_backbone: str = "mobilenetv2_100",
        pretrained: bool = False,
        hand_dim: int = 128,
        gnn_hidden: int = 64,
        gnn_layers: int = 3,
        object_dim: int = 256,
        context_dim: int | None = 512,
        num_objects: int = 4,
        object_size: int = 112,
        fusion_dim: int = 256,
        num_heads: int = 4,
        lstm_hidden: int = 256,
        lstm_layers: int = 1,
        use_boxes: bool = True,
        stream_dropout: float = 0.0,
        dropout: float = 0.3,
        num_frames: int = 8,
        image_size: int = 112,
    ) -> None:
        super().__init__()
        streams = _parse_streams(streams)
        if fusion_dim % num_heads:
            raise ConfigError(f"model.fusion_dim ({fusion_dim}) must be a multiple of model.num_heads ({num_heads})")
        if num_objects < 1:
            raise ConfigError(f"model.num_objects must be >= 1, got {num_objects}")
        self.streams = streams
        self.num_objects = num_objects
        self.object_size = object_size
        self.use_boxes = use_boxes
        if not 0.0 <= stream_dropout < 1.0:
            raise ConfigError(f"model.stream_dropout must be in [0, 1), got {stream_dropout}")
        self.stream_dropout = stream_dropout
        self.num_classes = num_classes
        side: list[str] = []
        if "hands" in streams:
            self.hand_encoder = HandSkeletonEncoder(hidden_dim=gnn_hidden, out_dim=hand_dim, num_layers=gnn_layers)
            self.hand_proj = nn.Linear(hand_dim, fusion_dim)
            self.hand_slot = nn.Parameter(torch.zeros(NUM_HANDS, fusion_dim))
            side += ["hand_joints", "hand_joints_mask"]
            if use_boxes:
                self.hand_box_embed = nn.Linear(4, fusion_dim)
                side += ["hand_boxes", "hand_mask"]
        if "objects" in streams:
            self.object_encoder = ImageEncoder(
                object_backbone, out_dim=object_dim, pretrained=pretrained, key="object_backbone"
            )
            self.object_proj = nn.Linear(self.object_encoder.out_dim, fusion_dim)
            self.object_slot = nn.Parameter(torch.zeros(num_objects, fusion_dim))
            side += ["object_crops", "object_mask"]
            if use_boxes:
                self.object_box_embed = nn.Linear(4, fusion_dim)
                side += ["object_boxes"]
            self.register_buffer("crop_mean", torch.tensor(IMAGENET_MEAN).view(3, 1, 1), persistent=False)
            self.register_buffer("crop_std", torch.tensor(IMAGENET_STD).view(3, 1, 1), persistent=False)
        if "context" in streams:
            self.context_encoder = ImageEncoder(
                context_backbone, out_dim=context_dim, pretrained=pretrained, key="context_backbone"
            )
            self.context_proj = nn.Linear(self.context_encoder.out_dim, fusion_dim)
        if "context" not in streams or stream_dropout > 0:
            self.query = nn.Parameter(torch.zeros(fusion_dim))  # stands in for the context token (off or dropped)
        self.has_tokens = "hands" in streams or "objects" in streams
        if self.has_tokens:
            self.null_token = nn.Parameter(torch.zeros(fusion_dim))  # always attendable: no all-masked rows
            self.cross_attn = nn.MultiheadAttention(fusion_dim, num_heads, dropout=0.0, batch_first=True)
            self.norm1 = nn.LayerNorm(fusion_dim)
            self.mlp = nn.Sequential(
                nn.Linear(fusion_dim, 2 * fusion_dim), nn.GELU(), nn.Linear(2 * fusion_dim, fusion_dim)
            )
            self.norm2 = nn.LayerNorm(fusion_dim)
        self.lstm = nn.LSTM(fusion_dim, lstm_hidden, num_layers=lstm_layers, batch_first=True, bidirectional=True)
        self.num_features = 2 * lstm_hidden
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, num_classes)
        for p in (getattr(self, n, None) for n in ("hand_slot", "object_slot", "query", "null_token")):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)
        objects = "objects" in streams
        self.input_spec = InputSpec(
            num_frames=num_frames,
            image_size=image_size,
            side_inputs=tuple(side),
            object_size=object_size if objects else None,
            num_objects=num_objects if objects else None,
        )

    # ------------------------------------------------------------------ streams
    def _keep(self, b: int, ref: torch.Tensor) -> torch.Tensor | None:
        """Per-sample 0/1 keep mask ``(B, 1, 1)`` for stream dropout (training only), else ``None``."""
        if not self.training or self.stream_dropout <= 0:
            return None
        return (torch.rand(b, 1, 1, device=ref.device) >= self.stream_dropout).to(ref.dtype)

    def _need(self, side: dict[str, torch.Tensor | None], key: str) -> torch.Tensor:
        value = side.get(key)
        if value is None:
            hint = "vidrec prepare hands" if key.startswith("hand_joints") else "vidrec prepare objects"
            raise ConfigError(
                f"model multistream with streams {list(self.streams)} needs the input {key!r}, which the batch lacks; "
                f"cache it with `{hint}` (or turn the stream off: --set model.streams=[...])"
            )
        return value

    def _hand_tokens(self, side: dict[str, torch.Tensor | None], b: int, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        joints = self._need(side, "hand_joints").float()  # (B, T, 2, 21, 3)
        jmask = self._need(side, "hand_joints_mask").float()  # (B, T, 2)
        if joints.shape[:3] != (b, t, NUM_HANDS) or joints.shape[3:] != (NUM_JOINTS, 3):
            raise ValueError(f"hand_joints must be (B, T, 2, 21, 3) = ({b}, {t}, 2, 21, 3), got {tuple(joints.shape)}")
        feat = self.hand_encoder(joints) * jmask.unsqueeze(-1)  # (B, T, 2, hand_dim), zero where no joints
        keep = self._keep(b, feat)
        if keep is not None:
            feat = feat * keep.unsqueeze(-1)  # stream dropout: this sample's joints unseen, its boxes kept
        tokens = self.hand_proj(feat) * jmask.unsqueeze(-1) + self.hand_slot  # (B, T, 2, D)
        present = jmask > 0
        if self.use_boxes:
            boxes = self._need(side, "hand_boxes").float()  # (B, T, 2, 4)
            bmask = self._need(side, "hand_mask").float()  # (B, T, 2)
            tokens = tokens + self.hand_box_embed(boxes) * bmask.unsqueeze(-1)
            present = present | (bmask > 0)
        return tokens, present

    def _object_tokens(self, side: dict[str, torch.Tensor | None], b: int, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        o = self.num_objects
        crops = _fit_slots(self._need(side, "object_crops"), o)  # (B, T, O, 3, S, S)
        mask = _fit_slots(self._need(side, "object_mask"), o) > 0  # (B, T, O)
        if crops.shape[:2] != (b, t) or crops.dim() != 6:
            raise ValueError(f"object_crops must be (B, T, O, 3, S, S) with B={b}, T={t}, got {tuple(crops.shape)}")
        feats = crops.new_zeros((b, t, o, self.object_encoder.out_dim), dtype=self.head.weight.dtype)
        if mask.any():
            x = crops[mask]  # (N, 3, S, S): only the objects present
            x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
            x = (x - self.crop_mean) / self.crop_std
            feats[mask] = self.object_encoder(x).to(feats.dtype)
        keep = self._keep(b, feats)
        if keep is not None:
            feats = feats * keep.unsqueeze(-1)  # stream dropout: this sample's crops unseen, its boxes kept
        tokens = self.object_proj(feats) * mask.unsqueeze(-1) + self.object_slot  # (B, T, O, D)
        if self.use_boxes:
            boxes = _fit_slots(self._need(side, "object_boxes"), o).float()  # (B, T, O, 4)
            tokens = tokens + self.object_box_embed(boxes) * mask.unsqueeze(-1)
        return tokens, mask

    # ------------------------------------------------------------------ interface
    def frame_tokens(self, video: torch.Tensor, **side: torch.Tensor | None) -> torch.Tensor:
        """The fused per-frame features ``(B, T, fusion_dim)`` before the BiLSTM."""
        b, _, t, h, w = video.shape
        if "context" in self.streams:
            frames = video.transpose(1, 2).reshape(b * t, -1, h, w)  # (B*T, C, H, W)
            query = self.context_proj(self.context_encoder(frames)).reshape(b, t, -1)  # (B, T, D)
            keep = self._keep(b, query)
            if keep is not None:  # stream dropout: the learned query stands in for this sample's frames
                query = query * keep + self.query * (1 - keep)
        else:
            query = self.query.expand(b, t, -1)  # (B, T, D)
        if not self.has_tokens:
            return query
        tokens, present = [self.null_token.expand(b, t, 1, -1)], [video.new_ones((b, t, 1), dtype=torch.bool)]
        if "hands" in self.streams:
            tok, pres = self._hand_tokens(side, b, t)
            tokens.append(tok)
            present.append(pres)
        if "objects" in self.streams:
            tok, pres = self._object_tokens(side, b, t)
            tokens.append(tok)
            present.append(pres)
        keys = torch.cat(tokens, dim=2).reshape(b * t, -1, query.shape[-1])  # (B*T, K, D)
        pad = ~torch.cat(present, dim=2).reshape(b * t, -1)  # (B*T, K): True = ignore
        q = query.reshape(b * t, 1, -1)  # (B*T, 1, D)
        attended, _ = self.cross_attn(q, keys, keys, key_padding_mask=pad, need_weights=False)
        x = self.norm1(q + attended)
        x = self.norm2(x + self.mlp(x))
        return x.reshape(b, t, -1)  # (B, T, D)

    def forward_features(self, video: torch.Tensor, **side: torch.Tensor | None) -> torch.Tensor:
        x = self.frame_tokens(video, **side)  # (B, T, D)
        out, _ = self.lstm(x)  # (B, T, 2*hidden)
        return out.mean(dim=1)  # (B, 2*hidden)

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        for name in ("context_encoder", "object_encoder"):
            enc = getattr(self, name, None)
            if enc is not None:
                yield from enc.net.parameters()

    def no_weight_decay(self) -> set[str]:
        return {n for n in ("hand_slot", "object_slot", "query", "null_token") if hasattr(self, n)}

    def example_side_inputs(self, batch_size: int, num_frames: int, *, seed: int = 0) -> dict[str, torch.Tensor]:
        """Random side inputs of the right shapes for this model's streams (smoke tests, benchmarks)."""
        g = torch.Generator().manual_seed(seed)
        b, t, o, s = batch_size, num_frames, self.num_objects, self.object_size
        out: dict[str, torch.Tensor] = {}
        if "hands" in self.streams:
            out["hand_joints"] = torch.rand(b, t, NUM_HANDS, NUM_JOINTS, 3, generator=g)
            out["hand_joints_mask"] = (torch.rand(b, t, NUM_HANDS, generator=g) > 0.3).float()
            out["hand_boxes"] = _random_boxes((b, t, NUM_HANDS), g)
            out["hand_mask"] = torch.ones(b, t, NUM_HANDS)
        if "objects" in self.streams:
            out["object_crops"] = torch.randint(0, 256, (b, t, o, 3, s, s), generator=g, dtype=torch.uint8)
            out["object_boxes"] = _random_boxes((b, t, o), g)
            out["object_mask"] = (torch.rand(b, t, o, generator=g) > 0.3).float()
        return {k: v for k, v in out.items() if k in self.input_spec.side_inputs}


def _random_boxes(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    a, b = torch.rand(*shape, 2, generator=g), torch.rand(*shape, 2, generator=g)
    return torch.cat([torch.minimum(a, b), torch.maximum(a, b)], dim=-1)  # (..., 4) xyxy


def _fit_slots(x: torch.Tensor, n: int) -> torch.Tensor:
    """Pad (zeros) or cut dimension 2 (object slots) to ``n``."""
    have = x.shape[2]
    if have == n:
        return x
    if have > n:
        return x[:, :, :n]
    pad = x.new_zeros((*x.shape[:2], n - have, *x.shape[3:]))
    return torch.cat([x, pad], dim=2)


def _parse_streams(streams: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(streams, str):
        streams = [s.strip() for s in streams.strip("[]").split(",") if s.strip()]
    out = tuple(dict.fromkeys(str(s).strip().lower() for s in streams))
    bad = [s for s in out if s not in STREAMS]
    if bad:
        raise ConfigError(f"model.streams: unknown stream(s) {bad}; choose from {list(STREAMS)}")
    if not out:
        raise ConfigError(f"model.streams: at least one stream is needed; choose from {list(STREAMS)}")
    return out


_SPEC = InputSpec(
    num_frames=8, image_size=112, side_inputs=HAND_SIDE_INPUTS + OBJECT_SIDE_INPUTS, object_size=112, num_objects=4
)


@register_model(
    "multistream",
    input=_SPEC,
    pretrained=[
        PretrainedCfg(
            "context",
            "timm:resnet34",
            image_size=224,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            num_classes=1000,
            dataset="ImageNet-1k",
            part="context_encoder",
        ),
        PretrainedCfg(
            "objects",
            "timm:mobilenetv2_100",
            image_size=224,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            num_classes=1000,
            dataset="ImageNet-1k",
            part="object_encoder",
        ),
    ],
    description="Hands (skeleton GNN on MediaPipe joints) + object crops (MobileNetV2) + context (ResNet-34), "
    "cross-attention fusion, BiLSTM (seed 000)",
)
def multistream(**kwargs: Any) -> MultiStream:
    """Multi-stream hand / object / context model; ``streams`` picks the streams (ablations)."""
    return build_variant("multistream", {}, **kwargs)
