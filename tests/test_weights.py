"""Weights: upstream models (timm, torchvision, transformers) saved in their own format and loaded
through vidrec's loader; bad files and offline hub requests fail at once with clear messages."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.test_models import HF_MEAN, HF_NUM_FRAMES, HF_SIZE, make_tiny_hf_dir
from vidrec.errors import ConfigError, WeightsError
from vidrec.models import weights as W
from vidrec.models.registry import create_model
from vidrec.models.weights import load_weights, read_state_dict

torch.set_num_threads(1)


class Evil:  # an arbitrary pickled object: weights_only=True must refuse it
    pass


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VIDREC_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # no cached hub files
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))


# ---------------------------------------------------------------------------------------------
# parameter counts at the standard sizes against the upstream constructors


def test_parameter_counts_match_upstream() -> None:
    import timm
    from torchvision.models.video import r2plus1d_18, r3d_18

    with torch.device("meta"):  # shapes only: no memory, no init cost
        assert _count(create_model("r3d_18", num_classes=400)) == _count(r3d_18()) == 33_371_472
        assert _count(create_model("r2plus1d_18", num_classes=400)) == _count(r2plus1d_18()) == 31_505_325
        cnn = create_model("cnn_rnn", num_classes=174)
        assert _count(cnn.encoder) == _count(timm.create_model("resnet18", num_classes=0)) == 11_176_512
        r50 = create_model("cnn_rnn_r50", num_classes=174)
        assert _count(r50.encoder) == _count(timm.create_model("resnet50", num_classes=0))
        lsvit = create_model("lsvit", num_classes=174)
        assert _count(lsvit.vit) == _count(timm.create_model("vit_base_patch16_224", num_classes=0)) == 85_798_656
        # r3d_34 / r3d_50: the [3, 4, 6, 3] basic / bottleneck layouts
        r34, r50_3d = create_model("r3d_34", num_classes=400), create_model("r3d_50", num_classes=400)
        assert [len(getattr(r34, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
        assert [len(getattr(r50_3d, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
        assert r50_3d.num_features == 2048 and r34.num_features == 512


# ---------------------------------------------------------------------------------------------
# torchvision


def test_torchvision_r3d_18_checkpoint_gives_the_same_output(tmp_path: Path) -> None:
    from torchvision.models.video import r3d_18

    torch.manual_seed(0)
    upstream = r3d_18().eval()
    path = tmp_path / "r3d_18.pth"
    torch.save(upstream.state_dict(), path)  # torchvision's own format: fc.*, stem.*, layer*.*
    model = create_model("r3d_18", num_classes=400)
    report = load_weights(model, path, strict=True)
    assert report.ok and "head.weight" in report.loaded
    video = torch.randn(1, 3, 2, 16, 16)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(video), upstream(video), rtol=1e-5, atol=1e-5)


def test_kinetics_head_is_skipped_for_another_label_set(tmp_path: Path) -> None:
    from torchvision.models.video import r2plus1d_18

    with torch.device("meta"):  # values do not matter here, only names and shapes: skip the init
        upstream, model = r2plus1d_18(), create_model("r2plus1d_18", num_classes=7)
    path = tmp_path / "k400.pt"
    torch.save({"model": upstream.to_empty(device="cpu").state_dict(), "epoch": 3}, path)  # a training-script wrapper
    model.to_empty(device="cpu")
    report = load_weights(model, path)
    assert report.skipped == ["head.bias", "head.weight"]
    assert "head.weight" in report.summary() and "another label set" in report.summary()
    assert model.head.out_features == 7 and not report.unexpected


def test_kinetics_metadata_matches_torchvision() -> None:
    from torchvision.models import get_weight

    from vidrec.models.registry import get_model_entry

    for name in ("r3d_18", "mc3_18", "r2plus1d_18"):
        cfg = get_model_entry(name).pretrained["kinetics400"]
        weights = get_weight(cfg.source.split(":", 1)[1])
        t = weights.transforms()
        assert list(cfg.mean) == pytest.approx(list(t.mean)) and list(cfg.std) == pytest.approx(list(t.std))
        assert cfg.image_size == t.crop_size[0] and cfg.num_classes == len(weights.meta["categories"]) == 400
        assert cfg.top1 == weights.meta["_metrics"]["Kinetics-400"]["acc@1"]
        assert create_model(name, num_classes=3).input_spec.mean == cfg.mean


# ---------------------------------------------------------------------------------------------
# timm ViT → LS-ViT


def test_timm_vit_loads_into_lsvit_with_keys_mapped(tmp_path: Path) -> None:
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    upstream = VisionTransformer(img_size=64, patch_size=16, embed_dim=32, depth=1, num_heads=2, num_classes=10)
    path = tmp_path / "vit.safetensors"
    save_file(upstream.state_dict(), str(path))
    model = create_model("lsvit", num_classes=3, image_size=32, embed_dim=32, depth=1, num_heads=2)
    report = load_weights(model, path)
    assert "vit.blocks.0.attn.qkv.weight" in report.loaded and "vit.cls_token" in report.loaded
    assert report.unexpected == ["vit.head.bias", "vit.head.weight"]  # ImageNet classifier: reported, not loaded
    assert any(k.startswith("smif.") for k in report.missing) and any(k.startswith("lmi.") for k in report.missing)
    torch.testing.assert_close(model.vit.blocks[0].mlp.fc1.weight, upstream.blocks[0].mlp.fc1.weight)
    assert model.vit.pos_embed.shape == (1, 1 + 4, 32)  # resampled from 64 px (4×4 patches) to 32 px (2×2)
    torch.testing.assert_close(model.vit.pos_embed[:, 0], upstream.pos_embed[:, 0])  # class token position kept


def test_lsvit_motion_modules() -> None:
    model = create_model("lsvit", num_classes=3, image_size=32, embed_dim=32, depth=1, num_heads=2, smif_window=3)
    x = torch.randn(1, 1, 4, 32).repeat(1, 4, 1, 1)  # (B, T, L, D): 4 identical frames, no motion
    assert model.smif.motion(x).abs().max() == 0
    moving = x.clone()
    moving[:, 2:] += 1.0  # a change between frame 1 and 2
    m = model.smif.motion(moving)
    assert m[:, 0].abs().max() == 0 and m[:, 1:4].abs().min() > 0  # window 3 spreads it to the neighbours
    assert model.smif.alpha.requires_grad
    with torch.no_grad():  # clips of another size: the position grid is resampled on the fly
        assert model(torch.randn(1, 3, 2, 48, 64)).shape == (1, 3)
    with pytest.raises(ConfigError, match="not a multiple of the patch size"):
        model(torch.randn(1, 3, 2, 40, 40))
    with pytest.raises(ConfigError, match="multiple of model.patch_size"):
        create_model("lsvit", num_classes=3, image_size=40)
    with pytest.raises(ConfigError, match="smif_window"):
        create_model("lsvit", num_classes=3, image_size=32, embed_dim=32, depth=1, num_heads=2, smif_window=0)


# ---------------------------------------------------------------------------------------------
# Hugging Face


def test_hf_videomae_dir_through_hf_prefix(tmp_path: Path) -> None:
    from transformers import VideoMAEForVideoClassification

    directory = make_tiny_hf_dir("videomae", tmp_path / "vmae", num_labels=3)
    model = create_model(f"hf:{directory}", num_classes=5)
    assert model.head.out_features == 5  # resized from 3 (ignore_mismatched_sizes)
    spec = model.input_spec
    assert (spec.num_frames, spec.image_size, spec.mean) == (HF_NUM_FRAMES, HF_SIZE, HF_MEAN)
    upstream = VideoMAEForVideoClassification.from_pretrained(directory).eval()
    model.eval()
    video = torch.randn(2, 3, HF_NUM_FRAMES, HF_SIZE, HF_SIZE)
    with torch.no_grad():
        expected = upstream.fc_norm(upstream.videomae(video.permute(0, 2, 1, 3, 4)).last_hidden_state.mean(1))
        torch.testing.assert_close(model.forward_features(video), expected)
    # the same directory through model.weights: keys mapped (videomae.* → net.*), the 3-way head skipped
    fresh = create_model(f"hf:{make_tiny_hf_dir('videomae', tmp_path / 'other', num_labels=5)}", num_classes=5)
    report = load_weights(fresh, directory)
    assert report.skipped == ["head.bias", "head.weight"] and not report.unexpected and not report.missing
    with pytest.raises(ConfigError, match="data.num_frames=4"):
        model(torch.randn(1, 3, 8, HF_SIZE, HF_SIZE))


def test_hf_bad_names(tmp_path: Path, offline: None) -> None:
    with pytest.raises(WeightsError, match="no such directory"):
        create_model(f"hf:{tmp_path / 'missing'}", num_classes=3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="config.json"):
        create_model(f"hf:{tmp_path / 'empty'}", num_classes=3)
    with pytest.raises(ConfigError, match="needs a hub id"):
        create_model("hf:", num_classes=3)
    start = time.perf_counter()
    with pytest.raises(WeightsError, match="model.name=hf:DIR"):
        create_model("hf:MCG-NJU/videomae-base", num_classes=3)
    assert time.perf_counter() - start < 5


# ---------------------------------------------------------------------------------------------
# the loader itself


def test_wrappers_and_prefixes_are_unwrapped(tmp_path: Path) -> None:
    model = create_model("frame_avg", num_classes=3, backbone="resnet10t")
    sd = {f"module.{k}": v for k, v in model.state_dict().items()}  # DDP-saved
    torch.save({"state_dict": sd, "optimizer": {"lr": 0.1}}, tmp_path / "ddp.pth")
    fresh = create_model("frame_avg", num_classes=3, backbone="resnet10t")
    report = load_weights(fresh, tmp_path / "ddp.pth", strict=True)
    assert report.ok
    torch.testing.assert_close(fresh.head.weight, model.head.weight)
    # a checkpoint directory with model.safetensors (what the trainer writes)
    (tmp_path / "ckpt").mkdir()
    save_file(model.state_dict(), str(tmp_path / "ckpt" / "model.safetensors"))
    assert set(read_state_dict(tmp_path / "ckpt")) == set(model.state_dict())


def test_shape_mismatch_names_the_tensor(tmp_path: Path) -> None:
    small = create_model("cnn_rnn", num_classes=3, backbone="resnet10t", hidden_size=8)
    save_file(small.state_dict(), str(tmp_path / "small.safetensors"))
    big = create_model("cnn_rnn", num_classes=3, backbone="resnet10t", hidden_size=16)
    with pytest.raises(
        WeightsError, match=r"'attention\.key\.weight' has shape \(256, 16\) in the file but \(256, 32\)"
    ):
        load_weights(big, tmp_path / "small.safetensors")


def test_strict_and_unrelated_weights(tmp_path: Path) -> None:
    model = create_model("frame_avg", num_classes=3, backbone="resnet10t")
    partial = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    save_file(partial, str(tmp_path / "partial.safetensors"))
    with pytest.raises(WeightsError, match="missing"):
        load_weights(model, tmp_path / "partial.safetensors", strict=True)
    save_file({"foo.weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightsError, match="another model"):
        load_weights(model, tmp_path / "other.safetensors")


def test_bad_files(tmp_path: Path) -> None:
    model = create_model("frame_avg", num_classes=3, backbone="resnet10t")
    with pytest.raises(WeightsError, match="does not exist"):
        load_weights(model, tmp_path / "nope.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        load_weights(model, tmp_path / "junk.safetensors")
    (tmp_path / "w.npz").write_bytes(b"x")
    with pytest.raises(WeightsError, match="unknown weights format"):
        load_weights(model, tmp_path / "w.npz")
    torch.save({"state_dict": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match="weights_only=True"):
        load_weights(model, tmp_path / "evil.pth")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(WeightsError, match="without weights"):
        load_weights(model, tmp_path / "empty_dir")


def test_create_model_applies_local_weights(tmp_path: Path) -> None:
    src = create_model("cnn_rnn", num_classes=4, backbone="resnet10t", hidden_size=8)
    save_file(src.state_dict(), str(tmp_path / "model.safetensors"))
    model = create_model(
        "cnn_rnn", num_classes=4, backbone="resnet10t", hidden_size=8, weights=tmp_path / "model.safetensors"
    )
    torch.testing.assert_close(model.head.weight, src.head.weight)
    with pytest.raises(WeightsError, match="no known pretrained weights"):
        create_model("r3d_34", num_classes=4, pretrained=True)


def test_hub_requests_offline_fail_at_once(offline: None) -> None:
    for name in ("r3d_18", "lsvit_tiny", "frame_avg"):
        start = time.perf_counter()
        with pytest.raises(WeightsError, match="model.weights=PATH") as info:
            create_model(name, num_classes=3, pretrained=True)
        assert "VIDREC_OFFLINE" in str(info.value)
        assert time.perf_counter() - start < 5, name
    with pytest.raises(WeightsError, match="unknown weights source"):
        W.fetch_state_dict("s3:bucket/model")


def test_pretrained_from_the_local_hub_cache_works_offline(offline: None, tmp_path: Path) -> None:
    """model.pretrained goes through the same code online and offline once the file is in the hub cache."""
    import os

    from torchvision.models.video import R3D_18_Weights, r3d_18

    cache = Path(torch.hub.get_dir()) / "checkpoints"
    cache.mkdir(parents=True)
    with torch.device("meta"):
        upstream = r3d_18()
    upstream.to_empty(device="cpu")
    torch.nn.init.normal_(upstream.stem[0].weight)
    torch.save(upstream.state_dict(), cache / os.path.basename(R3D_18_Weights.KINETICS400_V1.url))
    model = create_model("r3d_18", num_classes=6, pretrained=True)
    torch.testing.assert_close(model.stem[0].weight, upstream.stem[0].weight)
    assert model.head.out_features == 6  # Kinetics' 400-way classifier skipped


def test_pretrained_timm_backbone_uses_cached_file(
    offline: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import timm

    upstream = timm.create_model("resnet10t")
    save_file(upstream.state_dict(), str(tmp_path / "resnet10t.safetensors"))
    monkeypatch.setattr(W, "_cached_timm_file", lambda name: tmp_path / "resnet10t.safetensors")
    model = create_model("cnn_rnn", num_classes=3, backbone="resnet10t", hidden_size=8, pretrained=True)
    torch.testing.assert_close(model.encoder.net.layer1[0].conv1.weight, upstream.layer1[0].conv1.weight)
    trainable = {n.split(".")[2] for n, p in model.named_parameters() if p.requires_grad and n.startswith("encoder.")}
    assert trainable == {"layer3", "layer4"}  # "auto" with ImageNet weights: the seed's fine-tuned stages
