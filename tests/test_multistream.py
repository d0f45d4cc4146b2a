"""The multi-stream model: skeleton locality of the GNN, stream on/off, masks, config ablations."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from vidrec.config import load_config
from vidrec.errors import ConfigError
from vidrec.models.multistream import (
    HAND_CONNECTIONS,
    NUM_JOINTS,
    HandSkeletonEncoder,
    MultiStream,
    SkeletonBlock,
    SkeletonConv,
    hand_adjacency,
)
from vidrec.models.registry import build_model, check_model_kwargs

torch.set_num_threads(1)

TINY: dict[str, Any] = {
    "context_backbone": "test_resnet",
    "object_backbone": "test_efficientnet",
    "object_size": 32,
    "num_objects": 3,
    "fusion_dim": 32,
    "num_heads": 2,
    "lstm_hidden": 16,
    "hand_dim": 16,
    "gnn_hidden": 16,
    "object_dim": 16,
    "context_dim": 16,
    "dropout": 0.0,
}
B, T, S = 2, 4, 32


def tiny(streams: list[str] | None = None, **kw: Any) -> MultiStream:
    torch.manual_seed(0)
    args = dict(TINY, **kw)
    if streams is not None:
        args["streams"] = streams
    model = build_model("multistream", num_classes=5, **args)
    assert isinstance(model, MultiStream)
    return model.eval()


def inputs(model: MultiStream, seed: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(B, 3, T, S, S, generator=g)  # (B, C, T, H, W)
    side = model.example_side_inputs(B, T, seed=seed)
    return video, side


def neighbours(j: int) -> set[int]:
    return {b for a, b in HAND_CONNECTIONS if a == j} | {a for a, b in HAND_CONNECTIONS if b == j}


# ---------------------------------------------------------------------------------- GNN


def test_skeleton_is_mediapipe_topology() -> None:
    assert len(HAND_CONNECTIONS) == 21
    adj = hand_adjacency()
    assert adj.shape == (NUM_JOINTS, NUM_JOINTS)
    assert torch.equal(adj > 0, (adj > 0).T)  # undirected
    assert (adj.diagonal() == 0).all()
    assert torch.allclose(adj.sum(1), torch.ones(NUM_JOINTS))  # mean over neighbours
    assert neighbours(0) == {1, 5, 17}  # wrist: thumb base, index base, pinky base
    assert neighbours(9) == {5, 10, 13}
    assert neighbours(20) == {19}  # pinky tip


@pytest.mark.parametrize("layer_cls", [SkeletonConv, SkeletonBlock])
def test_one_layer_mixes_only_bone_neighbours(layer_cls: type) -> None:
    torch.manual_seed(0)
    adj = hand_adjacency()
    layer = layer_cls(8, 8, adj) if layer_cls is SkeletonConv else layer_cls(8, adj)
    x = torch.randn(3, NUM_JOINTS, 8)
    base = layer(x)
    for k in range(NUM_JOINTS):  # perturb joint k; see which outputs move
        x2 = x.clone()
        x2[:, k] += torch.randn(3, 8)
        moved = {i for i in range(NUM_JOINTS) if not torch.allclose(layer(x2)[:, i], base[:, i], atol=1e-6)}
        assert moved == neighbours(k) | {k}, f"joint {k}: outputs {sorted(moved)} changed"


def test_two_layers_reach_two_bones() -> None:
    torch.manual_seed(0)
    enc = HandSkeletonEncoder(hidden_dim=8, out_dim=8, num_layers=2)
    x = torch.randn(1, NUM_JOINTS, 3)
    base = enc.joint_features(x)
    x2 = x.clone()
    x2[0, 4] += 1.0  # thumb tip: 1 bone to 3, 2 bones to 2, 3 bones to 1
    moved = {i for i in range(NUM_JOINTS) if not torch.allclose(enc.joint_features(x2)[0, i], base[0, i], atol=1e-6)}
    assert moved == {2, 3, 4}


# ---------------------------------------------------------------------------------- streams


def test_forward_backward_all_streams() -> None:
    model = tiny()
    model.train()
    video, side = inputs(model)
    logits = model(video, **side)
    assert logits.shape == (B, 5) and torch.isfinite(logits).all()
    assert model.forward_features(video, **side).shape == (B, model.num_features)
    logits.sum().backward()
    for part in (model.hand_encoder, model.object_encoder.net, model.context_encoder.net, model.lstm):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0, part
    assert set(model.input_spec.side_inputs) == {
        "hand_joints", "hand_joints_mask", "hand_boxes", "hand_mask", "object_crops", "object_boxes", "object_mask",
    }  # fmt: skip


def _changes(model: MultiStream, key: str) -> bool:
    video, side = inputs(tiny())  # every side input, whether the model reads it or not
    base = model(video, **side)
    if key == "video":
        video = torch.randn_like(video)
    elif side[key].dtype == torch.uint8:
        side[key] = 255 - side[key]
    else:
        side[key] = torch.rand_like(side[key])
    return not torch.allclose(model(video, **side), base, atol=1e-6)


def test_objects_off_ignores_object_inputs() -> None:
    model = tiny(["context", "hands"])
    assert not hasattr(model, "object_encoder")
    assert not any(k.startswith("object") for k in model.input_spec.side_inputs)
    video, side = inputs(tiny())  # full side inputs, object keys included
    base = model(video, **side)
    side["object_crops"] = 255 - side["object_crops"]
    side["object_boxes"] = torch.rand_like(side["object_boxes"])
    assert torch.equal(model(video, **side), base)
    no_objects = {k: v for k, v in side.items() if not k.startswith("object")}
    assert torch.equal(model(video, **no_objects), base)  # not even needed


def test_each_stream_uses_its_inputs_only() -> None:
    on = tiny()
    assert _changes(on, "object_crops") and _changes(on, "hand_joints") and _changes(on, "video")
    assert _changes(on, "object_boxes") and _changes(on, "hand_boxes")
    hands_only = tiny(["hands"])
    assert not _changes(hands_only, "video") and _changes(hands_only, "hand_joints")
    context_only = tiny(["context"])
    assert context_only.input_spec.side_inputs == ()
    video, _ = inputs(context_only)
    assert context_only(video).shape == (B, 5)
    no_boxes = tiny(["objects"], use_boxes=False)
    assert "object_boxes" not in no_boxes.input_spec.side_inputs
    assert not _changes(no_boxes, "object_boxes") and _changes(no_boxes, "object_crops")


def test_masked_hand_and_objects_are_ignored() -> None:
    model = tiny(["context", "hands", "objects"])
    video, side = inputs(model)
    side["hand_joints_mask"][:, :, 1] = 0
    side["hand_mask"][:, :, 1] = 0
    side["object_mask"][:, :, 2] = 0
    base = model(video, **side)
    side["hand_joints"][:, :, 1] += 5.0  # the masked hand
    side["hand_boxes"][:, :, 1] = 0.5
    side["object_crops"][:, :, 2] = 0  # the masked object slot
    assert torch.allclose(model(video, **side), base, atol=1e-6)
    # nothing present at all: the null token keeps attention finite
    for k in ("hand_joints_mask", "hand_mask", "object_mask"):
        side[k] = torch.zeros_like(side[k])
    assert torch.isfinite(model(video, **side)).all()


def test_object_slots_padded_or_cut() -> None:
    model = tiny(["objects"])  # 3 slots
    video, side = inputs(model)
    base = model(video, **side)
    more = dict(side)
    more["object_crops"] = torch.cat([side["object_crops"], side["object_crops"][:, :, :2]], dim=2)  # 5 slots
    more["object_boxes"] = torch.cat([side["object_boxes"], side["object_boxes"][:, :, :2]], dim=2)
    more["object_mask"] = torch.cat([side["object_mask"], torch.ones(B, T, 2)], dim=2)
    assert torch.allclose(model(video, **more), base, atol=1e-6)  # extra slots beyond num_objects are cut


def test_missing_input_is_a_clear_error() -> None:
    model = tiny(["context", "hands"])
    video, side = inputs(model)
    del side["hand_joints"]
    with pytest.raises(ConfigError, match="hand_joints.*vidrec prepare hands"):
        model(video, **side)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"streams": ["context", "fingers"]}, "unknown stream"),
        ({"streams": []}, "at least one stream"),
        ({"context_backbone": "resnet_nope"}, "model.context_backbone"),
        ({"fusion_dim": 30, "num_heads": 4}, "multiple of model.num_heads"),
    ],
)
def test_bad_options(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_model("multistream", num_classes=3, **dict(TINY, **kwargs))


def test_ablation_is_a_config_override() -> None:
    cfg = load_config(overrides=["model.name=multistream", "model.streams=[context,objects]"], environ={}, validate=False)
    check_model_kwargs(cfg.model.name, cfg.model_kwargs)
    model = build_model(cfg.model.name, num_classes=3, **dict(TINY, **cfg.model_kwargs))
    assert model.streams == ("context", "objects") and not hasattr(model, "hand_encoder")
    with pytest.raises(ConfigError, match="model.stream"):
        check_model_kwargs("multistream", {"stream": ["context"]})


def test_standard_size_parameter_count() -> None:
    """The default (ResNet-34 + MobileNetV2 + GNN + fusion + BiLSTM) at SSv2's 174 classes; seed 000 reports 29.9M."""
    model = build_model("multistream", num_classes=174)
    n = sum(p.numel() for p in model.parameters())
    assert 25.0e6 < n < 26.5e6, n
