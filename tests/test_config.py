"""Configuration layering and errors."""

from __future__ import annotations

import pytest

from vidrec.config import load_config
from vidrec.errors import ConfigError


def test_precedence_defaults_file_env_set(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lr: 0.1\n  epochs: 3\ndata:\n  batch_size: 4\n")
    env = {"VIDREC__TRAIN__LR": "0.2", "VIDREC__DATA__BATCH_SIZE": "6"}
    cfg = load_config(f, environ=env, overrides=["train.lr=0.3"])
    assert cfg.train.lr == 0.3  # --set beats env
    assert cfg.data.batch_size == 6  # env beats file
    assert cfg.train.epochs == 3  # file beats default
    assert cfg.train.weight_decay == 1e-4  # default


def test_values_parse_as_yaml():
    cfg = load_config(
        overrides=["train.lr=3e-4", "train.grad_clip=null", "data.scale=[0.5, 1.0]", "model.attention=false"]
    )
    assert cfg.train.lr == 3e-4 and cfg.train.grad_clip is None and cfg.data.scale == (0.5, 1.0)
    assert cfg.model_kwargs == {"attention": False}


def test_precision_no_survives_yaml(tmp_path):
    """YAML 1.1 reads a bare ``no`` as false; ``train.precision=no`` must still mean fp32, not an error."""
    (tmp_path / "c.yaml").write_text("train:\n  precision: no\n")
    assert load_config(tmp_path / "c.yaml", environ={}).train.precision == "no"
    assert load_config(overrides=["train.precision=no"], environ={}).train.precision == "no"
    assert load_config(environ={"VIDREC__TRAIN__PRECISION": "no"}).train.precision == "no"
    with pytest.raises(ConfigError, match="train.precision"):
        load_config(overrides=["train.precision=true"], environ={})


@pytest.mark.parametrize(
    "overrides, env, needle",
    [
        (["train.lrr=1"], {}, "train.lrr: unknown key"),
        (["train.lr=abc"], {}, "train.lr"),
        (["train.epochs=0"], {}, "train.epochs"),
        ([], {"VIDREC__TRAIN__BATCHSIZE": "2"}, "train.batchsize: unknown key"),
        (["model.hiden_size=3"], {}, "model.hiden_size: not an option of model 'cnn_rnn'"),
        (["model.name=nope"], {}, "unknown model 'nope'"),
        (["data.dataset=nope"], {}, "unknown dataset 'nope'"),
        (["trainlr"], {}, "expected section.key=value"),
        (["bogus.key=1"], {}, "bogus: unknown key"),
    ],
)
def test_bad_keys_and_values_name_the_key(overrides, env, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        load_config(overrides=overrides, environ=env)


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_base_preset_and_relative_base(tmp_path):
    (tmp_path / "a.yaml").write_text("_base_: preset:demo\ntrain:\n  epochs: 2\n")
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\ndata:\n  batch_size: 3\n")
    cfg = load_config(tmp_path / "b.yaml")
    assert cfg.model.name == "cnn_rnn" and cfg.train.epochs == 2 and cfg.data.batch_size == 3
    assert cfg.data.image_size == 64  # from the preset


def test_round_trip_to_dict():
    from vidrec.config import config_from_dict

    cfg = load_config(overrides=["model.hidden_size=32", "train.lr=0.01"])
    again = config_from_dict(cfg.to_dict())
    assert again == cfg and again.model_kwargs == {"hidden_size": 32}


def test_deprecated_keys_still_load_and_say_where_they_went(caplog, monkeypatch):
    """data.test_views / data.eval_batch_size are eval.views / eval.batch_size now; eval.topk was never read."""
    import vidrec.config as config

    monkeypatch.setattr(config, "_warned", set())
    with caplog.at_level("WARNING", logger="vidrec.config"):
        cfg = load_config(overrides=["data.test_views=3", "data.eval_batch_size=5", "eval.topk=[1, 3]"])
    assert cfg.eval.views == 3 and cfg.eval.batch_size == 5
    assert "test_views" not in cfg.to_dict()["data"] and "topk" not in cfg.to_dict()["eval"]
    assert cfg.data_options == {}  # not taken for loader options either
    text = caplog.text
    assert "data.test_views is deprecated; use eval.views" in text and "eval.topk is deprecated and not used" in text
    cfg = load_config(overrides=["data.test_views=3", "eval.views=2"])  # the new key wins
    assert cfg.eval.views == 2
    monkeypatch.setattr(config, "_warned", set())
    caplog.clear()
    with caplog.at_level("WARNING", logger="vidrec.config"):  # an older checkpoint's config.yaml lists the defaults
        cfg = load_config(overrides=["data.test_views=1", "data.eval_batch_size=null", "eval.topk=[1, 5]"])
    assert cfg.eval.views == 1 and cfg.eval.batch_size is None and "deprecated" not in caplog.text


def test_monitor_is_named_for_the_task():
    assert load_config().train.monitor == "val_top1"
    assert load_config(overrides=["task=retrieval"]).train.monitor == "val_t2v_r1"  # a retrieval run has no top-1
    assert load_config(overrides=["task=retrieval", "train.monitor=val_loss"]).train.monitor == "val_loss"
    with pytest.raises(ConfigError, match="val_t2v_r1 is a retrieval metric"):
        load_config(overrides=["train.monitor=val_t2v_r1"])
