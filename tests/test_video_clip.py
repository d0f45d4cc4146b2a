"""The CLIP video encoder: exact plain-CLIP equivalence with merging off, token merging, prompts, fusion."""

from __future__ import annotations

import json
import string

import pytest
import torch

from vidrec.errors import ConfigError, WeightsError
from vidrec.models.registry import create_model, get_model_entry
from vidrec.models.video_clip import (
    HashTokenizer,
    TemporalFusion,
    VideoCLIP,
    bipartite_soft_matching,
    default_merge_layers,
    load_clip,
    parse_schedule,
    tiny_clip_config,
)

torch.set_num_threads(1)


def write_tiny_clip(path, *, layers: int = 4, image_size: int = 32):
    """A tiny CLIPModel + a tiny BPE CLIPTokenizer, saved in the upstream from_pretrained format."""
    from transformers import CLIPModel, CLIPTokenizer

    torch.manual_seed(0)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in string.ascii_lowercase + string.digits:
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    merges = ["c a", "ca t</w>", "d o", "do g</w>"]
    for m in merges:
        vocab["".join(m.split())] = len(vocab)
    cfg = tiny_clip_config(layers=layers, image_size=image_size, vocab_size=len(vocab))
    cfg.text_config.bos_token_id, cfg.text_config.eos_token_id, cfg.text_config.pad_token_id = 0, 1, 1
    model = CLIPModel(cfg).eval()
    model.save_pretrained(path)
    CLIPTokenizer(vocab=vocab, merges=[tuple(m.split()) for m in merges]).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return write_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


def test_merging_off_is_exactly_plain_clip(clip_dir):
    from transformers import CLIPModel

    model = create_model("clip_video", num_classes=0, clip=str(clip_dir), merge="off", num_frames=6).eval()
    ref = CLIPModel.from_pretrained(clip_dir).eval()
    torch.manual_seed(1)
    video = torch.randn(2, 3, 6, 32, 32)  # (B, C, T, H, W)
    with torch.no_grad():
        enc = model.encode_video(video)
        frames = ref.get_image_features(pixel_values=video.transpose(1, 2).reshape(12, 3, 32, 32)).pooler_output
    assert enc.clips.shape == (2, 6, 32)
    assert torch.equal(enc.clips, frames.view(2, 6, 32))
    assert torch.equal(enc.video, frames.view(2, 6, 32).mean(1))
    assert enc.groups == [[i] for i in range(6)]


def test_text_tower_matches_clip_with_its_tokenizer(clip_dir):
    from transformers import CLIPModel, CLIPTokenizer

    model = create_model("clip_video", num_classes=0, clip=str(clip_dir), merge="off").eval()
    assert not isinstance(model.tokenizer, HashTokenizer)
    ref = CLIPModel.from_pretrained(clip_dir).eval()
    tok = CLIPTokenizer.from_pretrained(clip_dir)
    texts = ["a cat", "the dog runs to the cat"]
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = ref.get_text_features(**enc).pooler_output
        got = model.embed_texts(texts)
    torch.testing.assert_close(got, want)


def test_merging_compresses_frames_progressively(clip_dir):
    model = create_model(
        "clip_video", num_classes=0, clip=str(clip_dir), num_frames=12, merge="2-2-2", merge_layers=[1, 2, 3]
    ).eval()
    plain = create_model("clip_video", num_classes=0, clip=str(clip_dir), num_frames=12, merge="off").eval()
    video = torch.randn(1, 3, 12, 32, 32)
    with torch.no_grad():
        enc = model.encode_video(video)
        ref = plain.encode_video(video)
    # 12 clips → 6 → 3 → 2 (the odd third clip is padded by repeating itself)
    assert enc.clips.shape == (1, 2, 32)
    assert enc.groups == [[0, 1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11]]
    assert enc.video.shape == (1, 32) and torch.isfinite(enc.video).all()
    assert not torch.allclose(enc.video, ref.video)
    cos = torch.nn.functional.cosine_similarity(enc.video, ref.video).item()
    assert cos > 0.5  # merged stays close to unmerged even untrained


def test_bipartite_soft_matching_preserves_mass():
    torch.manual_seed(0)
    x = torch.randn(3, 10, 4)
    size = torch.ones(3, 10, 1)
    out, new_size, _ = bipartite_soft_matching(x, size, x.clone(), 3)
    assert out.shape == (3, 7, 4) and new_size.shape == (3, 7, 1)
    torch.testing.assert_close(new_size.sum(1), size.sum(1))
    torch.testing.assert_close((out * new_size).sum(1), (x * size).sum(1))
    # identical tokens are merged first
    y = torch.randn(1, 4, 2)
    y[0, 1] = y[0, 0]  # token 0 (set A) duplicates token 1 (set B)
    merged, s, _ = bipartite_soft_matching(y, torch.ones(1, 4, 1), y.clone(), 1)
    assert s.max() == 2 and any(torch.allclose(row, y[0, 0]) for row in merged[0])


def test_prompts_and_seqtransf_train(clip_dir):
    model = create_model(
        "clip_video",
        num_classes=3,
        clip=str(clip_dir),
        num_frames=4,
        merge="2",
        merge_layers=[2],
        num_prompts=2,
        fusion="seqTransf",
    )
    video = torch.randn(2, 3, 4, 32, 32)
    logits = model(video)
    assert logits.shape == (2, 3)
    logits.sum().backward()
    assert model.prompts is not None and model.prompts.up.weight.grad is not None
    assert model.prompts.up.weight.grad.abs().sum() > 0
    assert model.merge_pos[0].grad is not None


def test_untrained_seqtransf_equals_meanp():
    fusion = TemporalFusion(16, "seqTransf", num_layers=2)
    x = torch.randn(2, 5, 16)
    seq, pooled = fusion(x, torch.arange(5))
    torch.testing.assert_close(seq, x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pooled, x.mean(1), atol=1e-5, rtol=1e-5)


def test_training_modes_select_parameter_groups():
    model = create_model("clip_video_tiny", num_classes=0, num_prompts=2)
    assert isinstance(model, VideoCLIP)
    groups = {g["name"]: g for g in model.param_groups("joint", clip_lr=1e-5, module_lr=1e-3)}
    assert groups["clip"]["lr"] == 1e-5 and groups["modules"]["lr"] == 1e-3
    assert [g["name"] for g in model.param_groups("merge_only", clip_lr=1e-5, module_lr=1e-3)] == ["modules"]
    model.set_training_mode("prompt_only")
    assert not any(p.requires_grad for p in model.clip.parameters())
    assert all(p.requires_grad for p in model.prompts.parameters())
    assert not any(p.requires_grad for p in model.merge_pos.parameters())
    assert model.set_training_mode("sequential", epoch=0, epochs=4) == ("merge", "fusion")
    assert model.set_training_mode("sequential", epoch=3, epochs=4) == ("prompt", "fusion")
    with pytest.raises(ConfigError, match="retrieval.mode"):
        model.set_training_mode("everything")  # type: ignore[arg-type]


def test_schedules_and_bad_options(clip_dir, tmp_path):
    assert parse_schedule("2-2-2") == (2, 2, 2) and parse_schedule("off") == () and parse_schedule([3, 2]) == (3, 2)
    assert default_merge_layers(12, 3) == (6, 8, 10)
    assert default_merge_layers(4, 3) == (1, 2, 3)
    with pytest.raises(ConfigError, match="merge_layers"):
        create_model("clip_video", num_classes=0, clip=str(clip_dir), merge="2-2", merge_layers=[2, 9])
    with pytest.raises(ConfigError, match="fusion"):
        create_model("clip_video_tiny", num_classes=0, fusion="lstm")
    with pytest.raises(ConfigError, match="merge_keep"):
        create_model("clip_video_tiny", num_classes=0, merge_keep=1.5)
    with pytest.raises(ConfigError, match="merge schedule"):
        parse_schedule("two-two")
    with pytest.raises(WeightsError, match="no config.json"):
        load_clip(tmp_path)
    (tmp_path / "w.safetensors").write_bytes(b"x")
    with pytest.raises(WeightsError, match="not a file"):
        load_clip(tmp_path / "w.safetensors")
    with pytest.raises(WeightsError, match="no such directory"):
        load_clip(tmp_path / "missing" / "dir")
    assert get_model_entry("clip_video").input.image_size == 224


def test_hash_tokenizer_fallback(tmp_path):
    from transformers import CLIPModel

    CLIPModel(tiny_clip_config()).save_pretrained(tmp_path / "notok")
    _model, tok, fp = load_clip(tmp_path / "notok")
    assert isinstance(tok, HashTokenizer) and fp.startswith("dir:")
    enc = tok(["Pour water", "pour  WATER!"])
    assert torch.equal(enc["input_ids"][0], enc["input_ids"][1])
    assert enc["input_ids"].max() == tok.eos


# ------------------------------------------------------------------------------------------------
# contrastive training (vidrec.engine.retrieval)

SYNTH_CLASSES = ["Moving [something] from left to right", "Moving [something] from right to left"]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from vidrec.data.synthetic import SynthSpec, generate

    root = tmp_path_factory.mktemp("synth")
    spec = SynthSpec(
        videos_per_class=8,
        val_per_class=2,
        test_per_class=0,
        size=48,
        num_frames=12,
        clutter=0.0,
        layouts=("ssv2",),
        classes=tuple(SYNTH_CLASSES),
    )
    generate(root, spec, workers=1, progress=False)
    return root


def _retrieval_cfg(root, *extra):
    from vidrec.config import load_config

    return load_config(
        overrides=[
            "task=retrieval",
            "model.name=clip_video_tiny",
            "model.num_frames=4",
            "model.merge=2",
            "model.num_prompts=2",
            f"data.root={root}",
            "data.num_frames=4",
            "data.image_size=32",
            "data.num_workers=0",
            "data.batch_size=8",
            "train.device=cpu",
            "train.precision='no'",
            *extra,
        ]
    )


def test_contrastive_loss_and_metrics():
    from vidrec.engine.retrieval import contrastive_loss, retrieval_metrics

    v = torch.eye(4)
    assert contrastive_loss(v, v, 100.0) < 1e-3 < contrastive_loss(v, v.roll(1, 0), 100.0)
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.1], [0.0, 0.1, 0.7]])  # text 1's match is ranked 2nd
    m = retrieval_metrics(sim)
    assert m["t2v_r1"] == pytest.approx(2 / 3) and m["t2v_r5"] == 1.0 and m["t2v_median_rank"] == 1.0
    assert m["v2t_r1"] == 1.0 and m["chance_r1"] == pytest.approx(1 / 3)


def test_captions_msrvtt_layout_and_errors(tmp_path):
    import json

    from vidrec.data.msrvtt import load_msrvtt, read_captions
    from vidrec.errors import DatasetError
    from vidrec.video.encode import write_video

    (tmp_path / "videos").mkdir()
    import numpy as np

    for i in range(3):
        write_video(tmp_path / "videos" / f"video{i}.mp4", np.zeros((4, 16, 16, 3), np.uint8), fps=4)
    data = {
        "videos": [
            {"video_id": "video0", "split": "train"},
            {"video_id": "video1", "split": "validate"},
            {"video_id": "video2", "split": "test"},
            {"video_id": "video9", "split": "train"},
        ],
        "sentences": [
            {"video_id": "video0", "caption": "a cat"},
            {"video_id": "video0", "caption": "a kitten"},
            {"video_id": "video1", "caption": "a dog"},
            {"video_id": "video2", "caption": "a cow"},
        ],
    }
    (tmp_path / "MSRVTT_data.json").write_text(json.dumps(data))
    rs = load_msrvtt(tmp_path)
    assert [len(rs.subsets[s]) for s in ("train", "val", "test")] == [1, 1, 1]
    assert rs.subsets["train"][0].meta["captions"] == ["a cat", "a kitten"]
    assert any("video9" in p for p in rs.problems)
    (tmp_path / "bad.json").write_text(json.dumps({"sentences": [{"video_id": "x"}]}))
    with pytest.raises(DatasetError, match="caption"):
        read_captions(tmp_path / "bad.json")
    with pytest.raises(DatasetError, match="no such captions file"):
        read_captions(tmp_path / "missing.json")


def test_contrastive_training_reaches_recall_far_above_chance(synth_root):
    """16 synthetic captioned clips, tiny random CLIP, at most 60 steps: R@1 on those pairs (chance 1/16)."""
    from vidrec.data.build import load_recordset
    from vidrec.engine.retrieval import build_retrieval_datasets, evaluate_retrieval, retrieval_step

    torch.manual_seed(0)
    cfg = _retrieval_cfg(synth_root)
    model = create_model("clip_video_tiny", num_classes=0, num_frames=4, merge="2", num_prompts=2)
    train_ds, _ = build_retrieval_datasets(cfg, load_recordset(cfg), model.input_spec)
    train_ds.clips.train = False  # fixed, centred clips: decoded once
    train_ds.train = False
    samples = [train_ds[i] for i in range(len(train_ds))]
    assert len(samples) == 16 and all(s["caption"] for s in samples)
    batch = {
        "video": torch.stack([s["video"] for s in samples]),
        "caption": [s["caption"] for s in samples],
        "index": torch.arange(16),
    }
    before = evaluate_retrieval(model, [batch])
    opt = torch.optim.AdamW(model.param_groups("joint", clip_lr=2e-3, module_lr=2e-3))
    for step in range(60):
        loss = retrieval_step(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 9:
            after = evaluate_retrieval(model, [batch])
            if after["t2v_r1"] >= 0.5 and after["v2t_r1"] >= 0.5:
                break
    assert after["chance_r1"] == pytest.approx(1 / 16)
    assert after["loss"] < before["loss"]
    assert after["t2v_r1"] >= 0.5 and after["v2t_r1"] >= 0.5, after  # chance: 0.0625


def test_vidrec_train_and_eval_with_a_retrieval_config(synth_root, tmp_path, capsys):
    """The trainer's retrieval wiring: one short epoch, a checkpoint, vidrec eval's R@K report."""
    from vidrec.engine.retrieval import evaluate_retrieval_checkpoint
    from vidrec.engine.run import train

    cfg = _retrieval_cfg(
        synth_root,
        "train.epochs=1",
        "train.max_steps_per_epoch=2",
        f"train.out_dir={tmp_path / 'run'}",
        "retrieval.mode=sequential",
    )
    out = train(cfg, progress=False)
    hist = out.fit.history[-1]
    assert {"val_t2v_r1", "val_v2t_r1", "val_t2v_median_rank"} <= set(hist) and "val_top1" not in hist
    assert cfg.train.monitor == "val_t2v_r1" and out.fit.best_metrics["val_t2v_r1"] == hist["val_t2v_r1"]
    m = evaluate_retrieval_checkpoint(out.fit.best_checkpoint)
    assert m["num_pairs"] == 4 and 0 <= m["t2v_r1"] <= 1 and m["subset"] == "val"
    # vidrec eval asks the checkpoint's task (no branch on cfg.task in the CLI): R@K text, metrics.json
    from vidrec.cli import main

    main(["eval", "--checkpoint", str(out.fit.best_checkpoint), "--out", str(tmp_path / "ev"), "--device", "cpu"])
    printed = capsys.readouterr().out
    assert "text→video: R@1" in printed and "video→text: R@1" in printed and "4 video–caption pairs" in printed
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["num_pairs"] == 4


def test_set_merge_schedule_on_a_built_model():
    torch.manual_seed(0)
    merged = create_model("clip_video_tiny", num_classes=0, num_frames=4, merge="2", num_prompts=0).eval()
    plain = create_model("clip_video_tiny", num_classes=0, num_frames=4, merge="off", num_prompts=0).eval()
    plain.load_state_dict({k: v for k, v in merged.state_dict().items() if not k.startswith("merge_pos")})
    video = torch.randn(1, 3, 4, 32, 32)
    merged.set_merge_schedule("off")
    with torch.no_grad():
        assert torch.equal(merged.encode_video(video).clips, plain.encode_video(video).clips)
    merged.set_merge_schedule("2-2", merge_layers=[1, 2])
    assert merged.encode_video(video).clips.shape == (1, 1, 32) and merged.describe()["merge_frames"] == "2-2"
    with pytest.raises(ConfigError, match="merge_layers"):
        merged.set_merge_schedule("2", merge_layers=[7])
