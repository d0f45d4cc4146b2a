"""The models from torchvision, TSM, SlowFast and X3D: exact to their references.

- torchvision's video models: same parameters, same outputs with the same weights, checkpoints load;
- TSM: the shift moves exactly the channels the paper says, across segments and never across videos;
- SlowFast: both pathways from one clip (PySlowFast's frame choice), lateral connections by α;
- SlowFast / X3D: a checkpoint in PyTorchVideo's key naming (built here from its recorded layout) loads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from vidrec.errors import ConfigError, WeightsError
from vidrec.models.registry import create_model
from vidrec.models.tsm import temporal_shift
from vidrec.models.weights import load_state_dict_into, load_weights

torch.set_num_threads(1)
ASSETS = Path(__file__).parent / "assets" / "pytorchvideo"


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------- torchvision


@pytest.mark.parametrize(
    ("name", "frames", "size"),
    [("mc3_18", 4, 32), pytest.param("s3d", 16, 224, marks=pytest.mark.slow), ("swin3d_t", 2, 32)],
)  # S3D: 16×224² is where its 2×7×7 pool fits, and so where its output must be torchvision's
def test_torchvision_checkpoint_gives_torchvision_output(name: str, frames: int, size: int, tmp_path: Path) -> None:
    import torchvision.models.video as tvv

    torch.manual_seed(0)
    upstream = getattr(tvv, name)(num_classes=7).eval()
    path = tmp_path / f"{name}.pth"
    torch.save(upstream.state_dict(), path)  # torchvision's own names: fc / classifier.1 / head
    model = create_model(name, num_classes=7, weights=path).eval()
    assert _count(model) == _count(upstream)
    video = torch.randn(1, 3, frames, size, size)
    with torch.no_grad():
        torch.testing.assert_close(model(video), upstream(video), rtol=1e-4, atol=1e-4)


def test_mvit_refuses_clips_of_another_size() -> None:
    with torch.device("meta"):
        model = create_model("mvit_v2_s", num_classes=3)
    with pytest.raises(
        ConfigError, match="data.num_frames=16 data.image_size=224, or .* model.num_frames=8 model.image_size=112"
    ):
        model(torch.empty(1, 3, 8, 112, 112, device="meta"))
    with pytest.raises(ConfigError, match="multiple of 32"):
        create_model("mvit_v2_s", num_classes=3, num_frames=8, image_size=100)


@pytest.mark.parametrize("name", ["mvit_v1_b", "mvit_v2_s"])
def test_mvit_is_torchvisions_builder_at_16x224_and_sized_for_other_clips(name: str, tmp_path: Path) -> None:
    """The block rules rebuild torchvision's network exactly; model.num_frames / image_size resize its tables."""
    import torchvision.models.video as tvv

    with torch.device("meta"):
        upstream, ours = getattr(tvv, name)(num_classes=5), create_model(name, num_classes=5)
    assert repr(ours.blocks) == repr(upstream.blocks)  # every pooling's kernel and stride, every width
    theirs = {k.replace("head.1.", "head."): v.shape for k, v in upstream.state_dict().items()}
    assert {k: v.shape for k, v in ours.state_dict().items()} == theirs

    torch.manual_seed(0)
    small = create_model(name, num_classes=5, num_frames=8, image_size=64, dropout=0.0, drop_path=0.0).eval()
    assert (small.input_spec.num_frames, small.input_spec.image_size) == (8, 64)  # the data follows it
    torch.save(small.state_dict(), tmp_path / "w.pth")
    again = create_model(name, num_classes=5, num_frames=8, image_size=64, weights=tmp_path / "w.pth").eval()
    video = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(again(video), small(video))
    with torch.device("meta"):
        torch.save({k: torch.empty(v, device="cpu") for k, v in theirs.items()}, tmp_path / "k.pth")
    with pytest.raises(WeightsError, match="another architecture or size"):  # 16×224² weights do not fit 8×64²
        create_model(name, num_classes=5, num_frames=8, image_size=64, weights=tmp_path / "k.pth")


# ---------------------------------------------------------------------------------------------- TSM


def test_temporal_shift_moves_exactly_one_eighth_each_way_within_each_video() -> None:
    n, t, c = 3, 4, 16  # 3 videos of 4 segments, 16 channels: fold = 2
    # every value names its origin: video * 1000 + segment * 100 + channel (+1 so that 0 means "padded")
    x = (torch.arange(n)[:, None, None] * 1000 + torch.arange(t)[None, :, None] * 100 + torch.arange(c) + 1).float()
    out = temporal_shift(x.reshape(n * t, c, 1, 1).repeat(1, 1, 2, 3), num_segments=t, fold_div=8)
    assert out.shape == (n * t, c, 2, 3) and (out == out[:, :, :1, :1]).all()  # every pixel alike
    out = out[:, :, 0, 0].reshape(n, t, c)
    for v in range(n):
        for s in range(t):
            for ch in range(c):
                got = out[v, s, ch].item()
                if ch < 2:  # channels 0-1 (1/8): from the next segment of the same video, zero at the last
                    want = x[v, s + 1, ch].item() if s + 1 < t else 0.0
                elif ch < 4:  # channels 2-3 (the next 1/8): from the previous segment, zero at the first
                    want = x[v, s - 1, ch].item() if s > 0 else 0.0
                else:  # the other 3/4 stay
                    want = x[v, s, ch].item()
                assert got == want, (v, s, ch, got, want)
    # nothing crosses from one video to the next: the padded places are zeros, never another video's values
    assert (out[:, -1, :2] == 0).all() and (out[:, 0, 2:4] == 0).all()
    assert ((out // 1000) == torch.arange(n)[:, None, None]).logical_or(out == 0).all()
    with pytest.raises(ConfigError, match="whole number"):
        temporal_shift(torch.zeros(6, 16, 1, 1), num_segments=4)


def test_tsm_is_the_resnet_plus_a_head_and_sees_order() -> None:
    import timm

    with torch.device("meta"):
        model = create_model("tsm_r50", num_classes=174)
        assert _count(model) == _count(timm.create_model("resnet50", num_classes=0)) + 2048 * 174 + 174
    model = create_model("tsm_r18", num_classes=3, dropout=0.0).eval()
    for m in model.modules():  # timm zero-initialises each block's last BN: the shifted branches would add nothing
        if isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
    assert len(model.shifts) == 8  # every residual block of ResNet-18 shifts before its conv1
    assert "encoder.net.layer1.0.conv1.weight" in model.state_dict()  # timm's names: ImageNet weights map in
    torch.manual_seed(0)
    video = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        base = model(video)
        assert not torch.allclose(model(video.flip(2)), base, atol=1e-5)  # order matters (frame_avg: it does not)
        other = video.clone()
        other[1] = torch.randn(3, 4, 32, 32)  # another second video: the first one's output must not move
        torch.testing.assert_close(model(other)[0], base[0])


def test_timm_imagenet_weights_load_into_tsm(tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save_file

    upstream = timm.create_model("resnet18")
    save_file(upstream.state_dict(), str(tmp_path / "resnet18.safetensors"))
    model = create_model("tsm_r18", num_classes=3, weights=tmp_path / "resnet18.safetensors")
    torch.testing.assert_close(model.encoder.net.layer2[1].conv1.weight, upstream.layer2[1].conv1.weight)


# ---------------------------------------------------------------------------------------------- SlowFast / X3D


def test_slowfast_pathways_come_from_one_clip() -> None:
    model = create_model("slowfast_r50", num_classes=3, layers=[1, 1, 1, 1]).eval()
    video = torch.arange(32, dtype=torch.float32).view(1, 1, 32, 1, 1).expand(2, 3, 32, 4, 4)
    slow, fast = model.pathways(video)
    assert fast is video  # the fast pathway is the clip itself: no second decode
    assert slow[0, 0, :, 0, 0].tolist() == [0, 4, 8, 13, 17, 22, 26, 31]  # PySlowFast's linspace(0, T-1, T/α)
    with pytest.raises(ConfigError, match="multiple of alpha=4"):
        model.pathways(torch.zeros(1, 3, 30, 4, 4))
    # the lateral connection brings the fast pathway in: changing only fast-only frames changes the output
    x = torch.randn(1, 3, 8, 32, 32)
    y = x.clone()
    y[:, :, 1] += 1.0  # frame 1 is not among the slow pathway's frames (0 and 7)
    with torch.no_grad():
        assert not torch.allclose(model(x), model(y))
    assert model.input_spec.num_frames == 32 and model.input_spec.image_size == 224


def _ptv_state_dict(file: str) -> dict[str, torch.Tensor]:
    """A checkpoint in PyTorchVideo's naming, values random (BN variances positive)."""
    layout = json.loads((ASSETS / file).read_text())
    g = torch.Generator().manual_seed(0)
    sd = {}
    for key, shape in layout.items():
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            sd[key] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[key] = torch.randn(shape, generator=g)
    return sd


@pytest.mark.parametrize(
    ("name", "file", "pairs"),
    [
        ("slowfast_r50", "slowfast_r50_state_dict.json", {
            "fast_stem.conv.weight": "blocks.0.multipathway_blocks.1.conv.weight",
            "fusions.2.conv.weight": "blocks.2.multipathway_fusion.conv_fast_to_slow.weight",
            "slow_layers.3.0.proj.0.weight": "blocks.4.multipathway_blocks.0.res_blocks.0.branch1_conv.weight",
            "fast_layers.1.2.conv_a.weight": "blocks.2.multipathway_blocks.1.res_blocks.2.branch2.conv_a.weight",
            "head.weight": "blocks.6.proj.weight",
        }),
        ("x3d_m", "x3d_state_dict.json", {
            "stem.conv_s.weight": "blocks.0.conv.conv_t.weight",  # PyTorchVideo's "conv_t" is the spatial one
            "stem.conv_t.weight": "blocks.0.conv.conv_xy.weight",
            "layer3.4.se.fc1.weight": "blocks.3.res_blocks.4.branch2.norm_b.1.block.0.weight",
            "layer1.0.proj_conv.weight": "blocks.1.res_blocks.0.branch1_conv.weight",
            "layer4.6.norm_b.running_var": "blocks.4.res_blocks.6.branch2.norm_b.0.running_var",
            "head.bias": "blocks.5.proj.bias",
        }),
    ],
)  # fmt: skip
def test_pytorchvideo_checkpoint_loads(name: str, file: str, pairs: dict[str, str], tmp_path: Path) -> None:
    sd = _ptv_state_dict(file)
    with torch.device("meta"):  # every tensor is replaced by the load: skip the initialisation
        model = create_model(name, num_classes=400)
    model.to_empty(device="cpu")
    if name == "x3d_m":  # the released file as it is (15 MB here): .pyth, {"model_state": ...}, extra entries
        path = tmp_path / "X3D_M.pyth"
        torch.save({"model_state": sd, "epoch": 196, "cfg": "TRAIN: ..."}, path)
        report = load_weights(model, path, strict=True)  # every tensor of both sides matched, none left over
    else:  # the same loader without a 138 MB file
        report = load_state_dict_into(model, sd, source="SLOWFAST_8x8_R50.pyth", strict=True)
    assert report.ok and len(report.loaded) == len(sd) == len(model.state_dict())
    own = model.state_dict()
    for ours, theirs in pairs.items():
        torch.testing.assert_close(own[ours], sd[theirs])
    if name == "x3d_m":  # the 1×1×1 post_conv became the linear fc1
        torch.testing.assert_close(model.fc1.weight, sd["blocks.5.pool.post_conv.weight"].flatten(1))
