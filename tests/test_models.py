"""One parametrised test over every registered model, plus per-family checks.

Per model: its parameter count at the standard size against its reference (``REFERENCE``), its
``input_spec`` against the registry's, and at a tiny size (``TINY``) forward, backward, one optimiser step,
a safetensors round trip and a new head. A model added to the registry without entries in both fails
here on purpose, so nothing ships untested. The big transformers that only take 16×224² clips (MViT) run
the tiny part as ``slow`` (``SLOW``); their parameters are counted in the fast suite (on the meta device).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from vidrec.errors import ConfigError, WeightsError
from vidrec.models.registry import PretrainedCfg, check_model_kwargs, create_model, get_model_entry, list_models
from vidrec.models.weights import load_weights

torch.set_num_threads(1)

NUM_CLASSES = 5

# name -> (builder kwargs, frames, image size)
TINY: dict[str, tuple[dict[str, Any], int, int]] = {
    "cnn_rnn": ({"hidden_size": 16, "attention_dim": 16, "dropout": 0.0}, 4, 32),
    "cnn_rnn_r34": ({"hidden_size": 16, "dropout": 0.0}, 3, 32),
    "cnn_rnn_r50": ({"hidden_size": 16, "dropout": 0.0}, 2, 32),
    "frame_avg": ({"dropout": 0.0}, 4, 32),
    "r3d_18": ({}, 4, 32),
    "mc3_18": ({}, 4, 32),
    "s3d": ({"dropout": 0.0}, 16, 64),  # smaller: its last BatchNorms see 1–2 values a channel and one step goes up
    "mvit_v1_b": ({"dropout": 0.0, "drop_path": 0.0, "num_frames": 4, "image_size": 32}, 4, 32),
    "mvit_v2_s": ({"dropout": 0.0, "drop_path": 0.0, "num_frames": 4, "image_size": 32}, 4, 32),
    "swin3d_t": ({"drop_path": 0.0}, 2, 32),
    "swin3d_s": ({"drop_path": 0.0}, 2, 32),
    "swin3d_b": ({"drop_path": 0.0}, 2, 32),
    "tsm_r18": ({"dropout": 0.0}, 4, 32),
    "tsm_r50": ({"dropout": 0.0}, 2, 32),
    "slowfast_r50": ({"layers": [1, 1, 1, 1], "dropout": 0.0}, 8, 32),
    "x3d_xs": ({"dropout": 0.0, "depth_factor": 0.5}, 2, 32),  # depthwise 3D convolutions are slow on CPUs
    "x3d_s": ({"dropout": 0.0, "depth_factor": 1.0}, 3, 32),
    "x3d_m": ({"dropout": 0.0, "depth_factor": 1.0}, 2, 32),
    "r3d_34": ({}, 4, 32),
    "r3d_50": ({}, 8, 32),
    "r2plus1d_18": ({}, 4, 32),
    "lsvit": ({"image_size": 32, "embed_dim": 32, "depth": 1, "num_heads": 2, "smif_window": 3}, 4, 32),
    "lsvit_tiny": ({"image_size": 32, "depth": 1, "smif_window": 3}, 4, 32),
    "videomae_small": ({"num_frames": 4, "image_size": 32, "hidden_size": 32, "depth": 1, "num_heads": 2}, 4, 32),
    "timesformer_small": ({"num_frames": 4, "image_size": 32, "hidden_size": 32, "depth": 1, "num_heads": 2}, 4, 32),
    "vivit_small": ({"num_frames": 4, "image_size": 32, "hidden_size": 32, "depth": 1, "num_heads": 2}, 4, 32),
    # other families' models (their owners test them in depth; here they meet the common contract)
    "clip_video": ({"arch": "tiny", "num_frames": 4}, 4, 32),
    "clip_video_tiny": ({"num_frames": 4}, 4, 32),
    "multistream": (
        {
            "context_backbone": "resnet10t",
            "object_backbone": "resnet10t",
            "hand_dim": 16,
            "gnn_hidden": 8,
            "gnn_layers": 1,
            "object_dim": 16,
            "context_dim": 16,
            "num_objects": 2,
            "object_size": 32,
            "fusion_dim": 16,
            "num_heads": 2,
            "lstm_hidden": 8,
            "dropout": 0.0,
            "num_frames": 4,
            "image_size": 32,
        },
        4,
        32,
    ),
}


# The tiny part of these runs in the slow suite: Swin-S/B and TSM-R50 repeat what Swin-T and TSM-R18 (the same
# code) show in the fast suite at a higher cost. X3D-S/M at their tiny sizes take under a second, so they stay in
# the fast suite, as does MViT built for 4×32² clips.
SLOW = {"swin3d_s", "swin3d_b", "tsm_r50"}

# name -> (classes, parameters at the standard size, the reference the number comes from)
_K = "torchvision's builder"
REFERENCE: dict[str, tuple[int, int, str]] = {
    "r3d_18": (400, 33_371_472, _K),
    "r2plus1d_18": (400, 31_505_325, _K),
    "mc3_18": (174, 11_579_502, _K),
    "s3d": (174, 8_088_398, _K),
    "mvit_v1_b": (174, 36_436_878, _K),
    "mvit_v2_s": (174, 34_363_950, _K),
    "swin3d_t": (174, 27_984_276, _K),
    "swin3d_s": (174, 49_642_884, _K),
    "swin3d_b": (174, 87_817_334, _K),
    "slowfast_r50": (400, 34_566_488, "PyTorchVideo's model zoo: 34.57M"),
    "x3d_xs": (400, 3_794_274, "PyTorchVideo's model zoo: 3.79M"),
    "x3d_s": (400, 3_794_274, "PyTorchVideo's model zoo: 3.79M"),
    "x3d_m": (400, 3_794_274, "PyTorchVideo's model zoo: 3.79M"),
    "tsm_r50": (174, 23_508_032 + 2048 * 174 + 174, "timm resnet50 without its classifier + the head"),
    "tsm_r18": (174, 11_176_512 + 512 * 174 + 174, "timm resnet18 without its classifier + the head"),
    "frame_avg": (174, 11_176_512 + 512 * 174 + 174, "timm resnet18 without its classifier + the head"),
    # vidrec's own compositions: the numbers docs/models.md lists (a change is a change of architecture)
    "cnn_rnn": (174, 13_368_046, "seed 004 layout"),
    "cnn_rnn_r34": (174, 23_476_206, "seed 004 layout"),
    "cnn_rnn_r50": (174, 28_845_294, "seed 004 layout"),
    "r3d_34": (174, 63_565_166, "seed 002 layout"),
    "r3d_50": (174, 46_517_870, "seed 002 layout"),
    "lsvit": (174, 91_300_783, "seed 001 layout on timm ViT-B/16"),
    "lsvit_tiny": (174, 5_876_527, "seed 001 layout on timm ViT-Ti/16"),
    "multistream": (174, 25_773_870, "seed 000 layout"),
    "videomae_small": (174, 2_107_758, "transformers config"),
    "timesformer_small": (174, 2_715_054, "transformers config"),
    "vivit_small": (174, 2_146_542, "transformers config"),
    "clip_video": (174, 151_371_183, "transformers CLIPConfig() = ViT-B/32 shapes"),
    "clip_video_tiny": (174, 155_887, "tiny CLIP config"),
}

HF_NUM_FRAMES, HF_SIZE = 4, 32
HF_MEAN = (0.25, 0.5, 0.75)  # written into the videomae processor config: must reach input_spec


def make_tiny_hf_dir(kind: str, directory: Path, *, num_labels: int = 3) -> Path:
    """Save a tiny random VideoMAE / TimeSformer / ViViT with ``save_pretrained`` (the upstream format)."""
    import json

    import transformers as tf

    directory.mkdir(parents=True, exist_ok=True)
    common = {
        "image_size": HF_SIZE,
        "num_frames": HF_NUM_FRAMES,
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "num_labels": num_labels,
    }
    if kind == "videomae":
        net = tf.VideoMAEForVideoClassification(tf.VideoMAEConfig(patch_size=16, tubelet_size=2, **common))
        (directory / "preprocessor_config.json").write_text(json.dumps({"image_mean": HF_MEAN, "image_std": [0.5] * 3}))
    elif kind == "timesformer":
        net = tf.TimesformerForVideoClassification(tf.TimesformerConfig(patch_size=16, **common))
    elif kind == "vivit":
        net = tf.VivitForVideoClassification(tf.VivitConfig(tubelet_size=[2, 16, 16], **common))
    else:
        raise ValueError(kind)
    net.save_pretrained(directory)
    return directory


def _hf_cases() -> list[str]:
    return ["hf:videomae", "hf:timesformer", "hf:vivit"]


def _cases() -> list[Any]:
    names = [e.name for e in list_models()]
    cases = [n for n in names if n != "hf:"] + (_hf_cases() if "hf:" in names else [])
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in cases]


@pytest.mark.parametrize("name", [e.name for e in list_models() if not e.prefix_match])
def test_parameter_count_and_input_spec(name: str) -> None:
    """At the standard size (meta device: shapes only), against the upstream builder where there is one."""
    if name not in REFERENCE:
        pytest.fail(f"model {name!r} is registered but has no reference parameter count in REFERENCE")
    classes, expected, source = REFERENCE[name]
    entry = get_model_entry(name)
    with torch.device("meta"):
        model = create_model(name, num_classes=classes)
        assert sum(p.numel() for p in model.parameters()) == expected, source
        if source == _K:
            import torchvision.models.video as tvv

            assert sum(p.numel() for p in getattr(tvv, name)(num_classes=classes).parameters()) == expected
    spec, meta = model.input_spec, entry.input  # what the data side reads, and what `vidrec models` shows
    assert (spec.num_frames, spec.image_size, spec.mean, spec.std) == (
        meta.num_frames,
        meta.image_size,
        meta.mean,
        meta.std,
    )
    assert set(spec.side_inputs) <= set(meta.side_inputs)
    for cfg in entry.pretrained.values():  # weights trained at another normalisation would be fed wrongly
        assert cfg.mean is None or cfg.part or cfg.mean == spec.mean, (name, cfg.tag)


def _build(name: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, int, int]:
    if name.startswith("hf:"):
        kind = name.split(":", 1)[1]
        directory = make_tiny_hf_dir(kind, tmp_path_factory.mktemp(kind))
        model = create_model(f"hf:{directory}", num_classes=NUM_CLASSES)
        spec = model.input_spec  # type: ignore[union-attr]
        return model, spec.num_frames, spec.image_size
    if name not in TINY:
        pytest.fail(f"model {name!r} is registered but has no tiny configuration in TINY (tests/test_models.py)")
    kwargs, frames, size = TINY[name]
    return create_model(name, num_classes=NUM_CLASSES, **kwargs), frames, size


def _fresh(name: str, tmp_path_factory: pytest.TempPathFactory) -> nn.Module:
    """Another instance of the model, uninitialised where possible (built on the meta device: fast)."""
    if not name.startswith("hf:"):
        with torch.device("meta"):
            model = create_model(name, num_classes=NUM_CLASSES, **TINY[name][0])
        if set(dict(model.named_buffers())) <= set(model.state_dict()):  # nothing the state dict would not fill
            return model.to_empty(device="cpu")
    torch.manual_seed(123)
    return _build(name, tmp_path_factory)[0]


@pytest.mark.parametrize("name", _cases())
def test_every_model(name: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    torch.manual_seed(0)
    model, frames, size = _build(name, tmp_path_factory)
    g = torch.Generator().manual_seed(1)
    b = 1 if name in SLOW else 2  # the big ones: half the work
    video = torch.randn(b, 3, frames, size, size, generator=g)  # (B, C, T, H, W)
    target = torch.tensor([1, 3][:b])
    example = getattr(model, "example_side_inputs", None)  # models with side inputs make their own
    side = example(b, frames) if example is not None else {}

    # forward: shape, finite, features
    model.train()
    logits = model(video, **side)
    assert logits.shape == (b, NUM_CLASSES)
    assert torch.isfinite(logits).all()
    feats = model.forward_features(video, **side)
    assert feats.shape == (b, model.num_features)

    # backward reaches the head and the backbone
    loss = nn.functional.cross_entropy(logits, target)
    loss.backward()
    head_grads = [p.grad for p in model.get_classifier().parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in head_grads)
    backbone = [p for p in model.backbone_parameters() if p.requires_grad]
    assert backbone, "backbone_parameters() must return the trainable backbone parameters"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in backbone)
    head_ids = {id(p) for p in model.get_classifier().parameters()}
    assert not head_ids & {id(p) for p in backbone}, "the head is not part of the backbone"

    # one optimiser step lowers the loss on this batch
    params = [p for p in model.parameters() if p.requires_grad]
    nn.utils.clip_grad_norm_(params, 1.0)  # a short step along the gradient: small enough for every family
    opt = torch.optim.SGD(params, lr=0.05)
    opt.step()
    opt.zero_grad()
    with torch.no_grad():
        after = nn.functional.cross_entropy(model(video, **side), target)
    assert after.item() < loss.item(), f"{name}: loss {loss.item():.4f} -> {after.item():.4f}"

    # save (safetensors, like the checkpoint dir's model.safetensors) and load into a fresh model
    model.eval()
    with torch.no_grad():
        expected = model(video, **side)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    fresh = _fresh(name, tmp_path_factory)
    report = load_weights(fresh, path, strict=True)
    assert report.ok and report.loaded
    fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(video, **side), expected)

    # a new head for another label set
    model.reset_classifier(7)
    assert model.num_classes == 7
    with torch.no_grad():
        assert model(video, **side).shape == (b, 7)


def test_registry_metadata_is_data() -> None:
    for entry in list_models():
        spec = entry.input
        assert spec.num_frames >= 1 and spec.image_size >= 16 and len(spec.mean) == 3 and len(spec.std) == 3
        assert isinstance(entry.model_cls, type) and issubclass(entry.model_cls, nn.Module), entry.name
        for tag, cfg in entry.pretrained.items():  # typed: PretrainedCfg(tag, "hub:id", input, ...)
            assert isinstance(cfg, PretrainedCfg) and cfg.tag == tag, (entry.name, tag)
            assert cfg.source.split(":", 1)[0] in ("timm", "torchvision", "hf", "url"), (entry.name, cfg.source)
            assert cfg.mean is None or len(cfg.mean) == 3


def test_unknown_option_and_model_are_refused() -> None:
    with pytest.raises(ConfigError, match="hidden_sise"):
        create_model("cnn_rnn", num_classes=3, hidden_sise=8)
    with pytest.raises(ConfigError, match="known:"):
        get_model_entry("no_such_model")
    with pytest.raises(ConfigError, match="not a timm model"):
        create_model("cnn_rnn", num_classes=3, backbone="resnet_nope")
    with pytest.raises(ConfigError, match="its parts are"):
        create_model("cnn_rnn", num_classes=3, finetune_layers=["layer9"])


def test_options_come_from_the_class_with_their_types() -> None:
    """``model.<key>`` is checked against the model class's constructor: names and types, values coerced."""
    assert set(get_model_entry("r3d_18").options()) == {"dropout", "layers", "zero_init_residual"}  # block/stem: code
    assert check_model_kwargs("cnn_rnn", {"hidden_size": "8", "finetune_layers": ["layer4"]}) == {
        "hidden_size": 8,
        "finetune_layers": ["layer4"],
    }
    with pytest.raises(ConfigError, match=r"model.hidden_size: 'eight' is not a valid int for model 'cnn_rnn'"):
        check_model_kwargs("cnn_rnn", {"hidden_size": "eight"})
    with pytest.raises(ConfigError, match=r"model.dropout: \[0.1\] is not a valid float"):
        create_model("r3d_18", num_classes=3, dropout=[0.1])
    with pytest.raises(
        ConfigError, match="model.block: not an option of model 'r3d_18'; its options are: dropout, layers"
    ):
        check_model_kwargs("r3d_18", {"block": "Bottleneck"})
    with pytest.raises(ConfigError, match="model.model_type"):
        check_model_kwargs("videomae_small", {"model_type": "gpt2"})  # a Literal: only the three families
    # a variant's model_args are defaults: the config overrides them like the constructor's own
    with torch.device("meta"):
        assert len(create_model("lsvit_tiny", num_classes=3, depth=2).vit.blocks) == 2
        assert create_model("cnn_rnn_r34", num_classes=3).encoder.backbone_name == "resnet34"


# ---------------------------------------------------------------------------------------------
# CNN-RNN / frame averaging


def test_cnn_rnn_finetune_layers_freeze_the_rest() -> None:
    model = create_model("cnn_rnn", num_classes=3, hidden_size=8, finetune_layers=["layer4"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("encoder.net.layer4.") for n in trainable)
    assert not any(n.startswith(("encoder.net.conv1", "encoder.net.layer1.", "encoder.net.layer3.")) for n in trainable)
    assert {id(p) for p in model.backbone_parameters()} == {
        id(p) for n, p in model.named_parameters() if n.startswith("encoder.net.layer4.")
    }
    # from scratch ("auto"), every backbone layer trains
    scratch = create_model("cnn_rnn", num_classes=3, hidden_size=8)
    assert all(p.requires_grad for p in scratch.parameters())


def test_cnn_rnn_freeze_bn_keeps_running_stats() -> None:
    model = create_model("cnn_rnn", num_classes=3, hidden_size=8, freeze_bn=True)
    model.train()
    bn = model.encoder.net.bn1
    before = bn.running_mean.clone()
    model(torch.randn(1, 3, 2, 32, 32))
    assert not bn.training and torch.equal(bn.running_mean, before)


def test_cnn_rnn_attention_off_and_temporal_order() -> None:
    torch.manual_seed(0)
    video = torch.randn(1, 3, 4, 32, 32)
    reversed_video = video.flip(2)
    rnn = create_model("cnn_rnn", num_classes=3, hidden_size=8, attention=False, dropout=0.0).eval()
    assert rnn.attention is None
    avg = create_model("frame_avg", num_classes=3, dropout=0.0).eval()
    with torch.no_grad():
        # frame averaging cannot tell the order of frames; the LSTM can
        torch.testing.assert_close(avg(video), avg(reversed_video))
        assert not torch.allclose(rnn(video), rnn(reversed_video), atol=1e-5)


def test_timm_backbone_weights_load_into_cnn_rnn(tmp_path: Path) -> None:
    import timm

    upstream = timm.create_model("resnet18", num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": upstream.state_dict()}, path)
    model = create_model("cnn_rnn", num_classes=3, hidden_size=8)
    report = load_weights(model, path)
    torch.testing.assert_close(model.encoder.net.conv1.weight, upstream.conv1.weight)
    assert "encoder.net.layer4.1.bn2.weight" in report.loaded
    assert any(k.startswith("lstm.") for k in report.missing)  # the temporal part is new
    frames = torch.randn(2, 3, 32, 32)
    upstream.eval(), model.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            model.encoder.net(frames), upstream.forward_head(upstream.forward_features(frames), pre_logits=True)
        )


def test_pretrained_offline_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("VIDREC_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(WeightsError, match="model.weights=PATH"):
        create_model("cnn_rnn", num_classes=3, pretrained=True, backbone="resnet10t")
    assert time.perf_counter() - start < 5


def test_unreachable_hub_is_detected_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from vidrec.models import weights

    for name in ("VIDREC_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(weights._HUB_HOSTS, "timm", "hub.invalid")  # .invalid never resolves (RFC 2606)
    monkeypatch.setattr(weights, "_cached_timm_file", lambda name: None)
    start = time.perf_counter()
    with pytest.raises(WeightsError, match="cannot be reached"):
        weights.fetch_state_dict("timm:resnet10t")
    assert time.perf_counter() - start < weights.NETWORK_TIMEOUT_S + 1.5


def test_models_cli_lists_every_model() -> None:
    import json

    from typer.testing import CliRunner

    from vidrec.cli import app

    result = CliRunner().invoke(app, ["models", "--json", "--num-classes", "10"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert set(rows) == {e.name + ("<hub id or dir>" if e.prefix_match else "") for e in list_models()}
    assert rows["r3d_18"]["params"] == 33_371_472 - 400 * 513 + 10 * 513  # torchvision's, head for 10 classes
    assert (rows["r3d_18"]["num_frames"], rows["r3d_18"]["image_size"]) == (16, 112)
    assert rows["r3d_18"]["pretrained"]["kinetics400"].startswith("torchvision:")
    assert rows["hf:<hub id or dir>"]["params"] is None
    table = CliRunner().invoke(app, ["models"])
    assert table.exit_code == 0 and "cnn_rnn" in table.output and "16×112²" in table.output
