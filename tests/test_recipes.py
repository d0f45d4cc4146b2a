"""Training recipes: optimizers, lr schedules (and their exact resume), stage-wise unfreezing,
per-group lrs and gradient norms in the logs, the retrieval temperature, data.max_train_samples."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import tiny_overrides
from vidrec.config import load_config
from vidrec.engine.optim import LRSchedule, UnfreezeSchedule, build_optimizer, group_lrs
from vidrec.engine.run import train
from vidrec.engine.trainer import StopTraining
from vidrec.errors import ConfigError, VidrecError


def _opt(cfg, lrs=(1e-2, 1e-3)):
    params = [torch.nn.Parameter(torch.ones(3, 3)) for _ in lrs]
    groups = [{"params": [p], "lr": lr, "name": n} for p, lr, n in zip(params, lrs, ("head", "backbone"))]
    return build_optimizer(cfg, groups), params


def _run_schedule(cfg, opt, sched, epochs, steps, metric=lambda e: 0.5):
    lrs = []
    for e in range(epochs):
        for _ in range(steps):
            lrs.append([g["lr"] for g in opt.param_groups])
            opt.step()
            sched.step_batch()
        sched.step_epoch({"val_top1": metric(e), "val_loss": 1.0})
    return lrs


@pytest.mark.parametrize(
    "sets, expect_head",
    [
        # warm-up (1 epoch = 4 steps), then cosine to min_lr_ratio × the smallest group lr
        (
            ["train.scheduler=cosine", "train.warmup_epochs=1", "train.min_lr_ratio=0.01"],
            lambda k: (
                1e-2 * (k + 1) / 4 if k < 4 else 1e-5 + (1e-2 - 1e-5) * 0.5 * (1 + math.cos(math.pi * (k - 4) / 12))
            ),
        ),
        # step: lr *= 0.1 after epochs 2 and 3 (no warm-up)
        (
            ["train.scheduler=step", "train.milestones=[2,3]", "train.warmup_epochs=0"],
            lambda k: 1e-2 * 0.1 ** ((k >= 8) + (k >= 12)),
        ),
        # warm-up, resumed inside it, then step (SequentialLR switches with MultiStepLR's closed form)
        (
            ["train.scheduler=step", "train.milestones=[3.5]", "train.warmup_epochs=3"],
            lambda k: 1e-2 * ((k + 1) / 12 if k < 12 else 0.1 if k >= 14 else 1.0),
        ),
        # plateau: val_top1 stays at 0.5, patience 1 -> the 3rd epoch without improvement (after epoch 3) reduces it
        (
            ["train.scheduler=plateau", "train.plateau_patience=1", "train.warmup_epochs=0", "train.gamma=0.5"],
            lambda k: 1e-2 * (0.5 if k >= 12 else 1.0),
        ),
        (["train.scheduler=constant", "train.warmup_epochs=0.5"], lambda k: 1e-2 * min(1.0, (k + 1) / 2)),
    ],
)
def test_schedules_follow_their_definition_and_resume_exactly(sets, expect_head, tmp_path):
    cfg = load_config(overrides=["train.epochs=4", "train.optimizer=sgd", *sets], environ={})
    opt, _ = _opt(cfg)
    sched = LRSchedule(opt, cfg, steps_per_epoch=4)
    lrs = _run_schedule(cfg, opt, sched, 4, 4)
    for k, (head, backbone) in enumerate(lrs):
        assert head == pytest.approx(expect_head(k), rel=1e-6, abs=1e-12), (k, head)
        assert backbone == pytest.approx(head / 10, rel=1e-6) or cfg.train.scheduler == "cosine"
    # stop after two epochs, save the state as a resumed run reads it (JSON + safetensors, no pickle),
    # rebuild everything from it: the remaining lrs are identical
    from vidrec.engine.state import load_state_dict, save_state_dict

    opt1, _ = _opt(cfg)
    s1 = LRSchedule(opt1, cfg, steps_per_epoch=4)
    first = _run_schedule(cfg, opt1, s1, 2, 4)
    save_state_dict(tmp_path, "optimizer", opt1.state_dict())
    save_state_dict(tmp_path, "scheduler", s1.state_dict())
    opt2, _ = _opt(cfg)
    s2 = LRSchedule(opt2, cfg, steps_per_epoch=4)
    opt2.load_state_dict(load_state_dict(tmp_path, "optimizer"))
    s2.load_state_dict(load_state_dict(tmp_path, "scheduler"))
    rest = _run_schedule(cfg, opt2, s2, 2, 4, metric=lambda e: 0.5)
    assert first + rest == lrs


def test_recipe_options_are_checked():
    with pytest.raises(ConfigError, match="milestones"):
        load_config(overrides=["train.scheduler=step"], environ={})
    with pytest.raises(ConfigError, match="nesterov"):
        load_config(overrides=["train.nesterov=true"], environ={})
    with pytest.raises(ConfigError, match="scheduler"):
        load_config(overrides=["train.scheduler=exponential"], environ={})
    sgd = ["train.optimizer=sgd", "train.momentum=0.9", "train.nesterov=true", "train.weight_decay=0.01"]
    cfg = load_config(overrides=sgd, environ={})
    opt, _ = _opt(cfg)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9
    assert group_lrs(opt) == {"lr/head": 1e-2, "lr/backbone": 1e-3}
    warm = load_config(overrides=["train.scheduler=step", "train.milestones=[1]", "train.warmup_epochs=2"], environ={})
    with pytest.raises(ConfigError, match="after the warm-up"):
        LRSchedule(_opt(warm)[0], warm, steps_per_epoch=3)


def test_unfreeze_schedule_by_backbone_part():
    from vidrec.models.base import named_backbone_parameters
    from vidrec.models.registry import create_model

    model = create_model("cnn_rnn", num_classes=2, backbone="resnet10t", hidden_size=8, attention_dim=8)
    assert list(model.backbone_stages())[-4:] == ["layer1", "layer2", "layer3", "layer4"]
    named = named_backbone_parameters(model, model.backbone_parameters())
    sched = UnfreezeSchedule(named, {"layer4": 1, "layer3": 2, "layer3.0.downsample": 3}, default=4)

    def trains() -> set[str]:
        return {
            ".".join(n.split(".")[:3]) if n.startswith("layer3") else n.split(".")[0]
            for n, p in named
            if p.requires_grad
        }

    layer3 = {"layer3.0.conv1", "layer3.0.bn1", "layer3.0.conv2", "layer3.0.bn2"}
    assert sched.apply(0) == [] and not trains()
    sched.apply(1)
    assert trains() == {"layer4"}
    sched.apply(2)
    assert trains() == {"layer4"} | layer3  # the longer key layer3.0.downsample keeps its own epoch
    sched.apply(3)
    assert trains() == {"layer4", "layer3.0.downsample"} | layer3
    assert "conv1" in sched.apply(4)
    assert all(p.requires_grad for p in model.head.parameters())
    with pytest.raises(ConfigError, match="layer9.*its parts are: .*layer4"):
        UnfreezeSchedule(named, {"layer9": 1}, default=0)


def test_sgd_step_recipe_logs_and_unfreezes_stage_by_stage(tiny_dataset, tmp_path, caplog):
    """One short run: SGD + nesterov, step schedule, layer4 unfrozen after one epoch (the rest of the
    backbone stays frozen), max_train_samples; metrics.jsonl and TensorBoard carry every group's lr
    and the gradient norm; the run writes its training curves."""
    from vidrec.engine.checkpoint import load_checkpoint
    from vidrec.engine.run import model_from_config

    extra = {
        "train.epochs": 2,
        "train.optimizer": "sgd",
        "train.lr": 0.05,
        "train.nesterov": True,
        "train.scheduler": "step",
        "train.milestones": "[1]",
        "train.gamma": 0.2,
        "train.backbone_lr_mult": 0.5,
        "train.freeze_backbone_epochs": 5,
        "train.unfreeze_schedule": "{layer4: 1}",
        "train.max_steps_per_epoch": 2,
        "data.max_train_samples": 6,
    }
    cfg = load_config(overrides=tiny_overrides(tiny_dataset, tmp_path / "run", **extra))
    torch.manual_seed(cfg.train.seed)
    init = dict(model_from_config(cfg, 2).named_parameters())
    with caplog.at_level(logging.INFO, logger="vidrec"):
        res = train(cfg, progress=False)
    assert "6 train / 4 val videos" in caplog.text  # val keeps all its videos
    assert "epoch 2: backbone parts training: layer4" in caplog.text
    model = load_checkpoint(res.fit.last_checkpoint).model
    changed = {
        n.split(".")[2] for n, p in model.named_parameters() if n.startswith("encoder.") and not torch.equal(p, init[n])
    }
    assert changed == {"layer4"}
    assert not torch.equal(model.head.weight, init["head.weight"])

    rows = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in rows if r["type"] == "epoch"]
    assert [e["lr/head"] for e in epochs] == pytest.approx([0.05, 0.01])  # gamma 0.2 after epoch 1
    assert [e["lr/backbone"] for e in epochs] == pytest.approx([0.025, 0.005])
    steps = [r for r in rows if r["type"] == "train"]
    assert steps and all(r["grad_norm"] > 0 and math.isfinite(r["grad_norm"]) for r in steps)
    assert all(e["train_grad_norm"] > 0 for e in epochs)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = EventAccumulator(str(tmp_path / "run/tb"))
    tb.Reload()
    assert {"lr/head", "lr/backbone", "grad_norm", "train_loss", "val_top1"} <= set(tb.Tags()["scalars"])
    assert (tmp_path / "run/training_curves.png").stat().st_size > 10_000


def test_plateau_needs_validation(tiny_dataset, tmp_path):
    extra = {"train.scheduler": "plateau", "data.val_subset": "none"}
    cfg = load_config(overrides=tiny_overrides(tiny_dataset, tmp_path / "r", **extra))
    with pytest.raises(VidrecError, match="plateau follows val_top1"):
        train(cfg, progress=False)


def test_max_train_samples_keeps_every_class_and_is_seeded():
    from vidrec.data.build import sample_records
    from vidrec.data.records import VideoRecord

    # classes of 5, 10, 15 and 20 videos
    records = [VideoRecord(Path(f"{c}_{i}.mp4"), c, f"{c}_{i}") for c in range(4) for i in range(5 + 5 * c)]
    a = sample_records(records, 20, seed=3)
    assert len(a) == 20 and a == sample_records(records, 20, seed=3) and a != sample_records(records, 20, seed=4)
    counts = [sum(r.label == c for r in a) for c in range(4)]
    assert all(abs(n - share) <= 1 for n, share in zip(counts, (2, 4, 6, 8))), counts  # proportional to class size
    assert a == sorted(a, key=records.index)  # the list's order is kept
    assert sample_records(records, 100, seed=0) == records


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe",
    [
        {
            "train.optimizer": "sgd",
            "train.scheduler": "plateau",
            "train.plateau_patience": 0,
            "train.monitor": "val_loss",
            "train.epochs": 3,
            "train.lr": 0.05,
        },
        {
            "train.optimizer": "sgd",
            "train.scheduler": "step",
            "train.milestones": "[1]",
            "train.epochs": 2,
            "train.lr": 0.05,
            "train.momentum": 0.8,
        },
    ],
    ids=["sgd-plateau", "sgd-step"],
)
def test_exact_resume_with_sgd_plateau_and_step(tiny_dataset, tmp_path, recipe):
    """Killed in its second epoch and resumed, a run ends with the weights of one that never stopped:
    the plateau's best and bad-epoch count, and the step schedule's position, come back with it."""
    # 2 steps per epoch: the one mid-epoch state save is at global step 3, where the run is killed
    extra = {
        "train.checkpoint_every_steps": 3,
        "train.max_steps_per_epoch": 2,
        "data.batch_size": 2,
        "train.warmup_epochs": 0,
        "model.dropout": 0.5,
        **recipe,
    }
    full = load_config(overrides=tiny_overrides(tiny_dataset, tmp_path / "full", **extra))
    train(full, progress=False)
    rows = [json.loads(x) for x in (tmp_path / "full/metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in rows if r["type"] == "epoch"]
    assert lrs[-1] < lrs[0], f"the schedule never lowered the lr ({lrs}): the test would not exercise its state"

    cut = load_config(overrides=tiny_overrides(tiny_dataset, tmp_path / "cut", **extra))

    def kill(state):
        if state.epoch == 1 and state.step_in_epoch == 1:
            raise StopTraining

    with pytest.raises(StopTraining):
        train(cut, progress=False, step_callback=kill)
    train(cut, resume=True, progress=False)
    a = load_file(str(tmp_path / "full/checkpoints/last/model.safetensors"))
    b = load_file(str(tmp_path / "cut/checkpoints/last/model.safetensors"))
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) == 0.0

    # the log too: every group's lr and the gradient norm averaged over steps on both sides of the kill
    def records(run: Path) -> list[dict]:
        timing = {"clips_per_s", "train_clips_per_s", "train_seconds"}
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if k not in timing} for x in lines]

    assert records(tmp_path / "cut") == records(tmp_path / "full")


def test_retrieval_temperature_fixed_or_learned_and_module_lrs():
    from vidrec.engine.retrieval import contrastive_loss
    from vidrec.engine.tasks import RetrievalTask
    from vidrec.models.registry import create_model

    def setup(*sets):
        cfg = load_config(
            overrides=[
                "task=retrieval",
                "model.name=clip_video_tiny",
                "retrieval.clip_lr=1e-5",
                "retrieval.module_lr=1e-4",
                *sets,
            ],
            environ={},
        )
        torch.manual_seed(0)
        model = create_model("clip_video_tiny", num_classes=0, num_frames=4, merge="2", num_prompts=2).eval()
        return cfg, model, RetrievalTask(cfg, model)

    batch = {
        "video": torch.randn(3, 3, 4, 32, 32),
        "caption": ["a red circle moves left", "a hand waves", "nothing happens"],
    }

    # fixed: the loss uses 1/τ, the scale is in no optimizer group and gets no gradient
    cfg, model, task = setup(
        "retrieval.temperature=0.05",
        "retrieval.learn_temperature=false",
        "retrieval.merge_lr=1e-2",
        "retrieval.prompt_lr=1e-3",
    )
    groups = task.param_groups(model)
    # (meanP fusion has no weights, so no "modules" group is left)
    assert {g["name"]: g["lr"] for g in groups} == {"clip": 1e-5, "merge": 1e-2, "prompt": 1e-3}
    scale = model.temperature_parameter()
    assert all(p is not scale for g in groups for p in g["params"])
    task.on_epoch_start(model, 0)
    assert not scale.requires_grad
    loss, _ = task.loss(model, batch)
    tok = model.tokenize(batch["caption"])
    v, t = model(batch["video"], input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
    assert loss.item() == pytest.approx(contrastive_loss(v, t, 1 / 0.05).item(), rel=1e-5)
    assert loss.item() != pytest.approx(contrastive_loss(v, t, model.logit_scale()).item(), rel=1e-3)

    # learned from τ: starts at 1/τ, trains in its own group (no weight decay), in every retrieval.mode
    cfg, model, task = setup("retrieval.temperature=0.2", "retrieval.mode=merge_only", "train.weight_decay=0.1")
    assert model.logit_scale().item() == pytest.approx(5.0)
    opt = build_optimizer(cfg, task.param_groups(model))
    temp = [g for g in opt.param_groups if g["name"] == "temperature"]
    assert len(temp) == 1 and temp[0]["weight_decay"] == 0.0 and temp[0]["params"] == [model.temperature_parameter()]
    task.on_epoch_start(model, 0)
    before = model.temperature_parameter().item()
    task.loss(model, batch)[0].backward()
    opt.step()
    assert model.temperature_parameter().item() != before
    assert not any(p.requires_grad for p in model.clip.vision_model.parameters())  # merge_only still freezes CLIP

    # default: the model's own scale (CLIP's 1/0.07 at initialisation), learned
    _, model, task = setup()
    assert model.logit_scale().item() == pytest.approx(1 / 0.07, rel=1e-4)
    assert task.temperature is None
    groups = {g["name"]: g["lr"] for g in task.param_groups(model)}
    assert groups == {"clip": 1e-5, "modules": 1e-4, "temperature": 1e-4}
