"""Presets, configs and the CLI's help: the defaults a user reads are the defaults the code uses."""

import re
import subprocess
import sys

import pytest

from digitnet import presets
from digitnet.errors import ConfigError, DigitnetError
from digitnet.presets import NO_AUGMENT, PRESETS, Augment, TrainConfig, make_config


def help_text(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "digitnet", *args, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return " ".join(proc.stdout.split())  # argparse wraps lines; compare on single spaces


def test_make_config_applies_the_preset_then_the_overrides():
    cfg = make_config("cnn", "fast")
    assert (cfg.epochs, cfg.lr, cfg.augment) == (1, 7e-3, NO_AUGMENT)
    assert cfg.batch_size == TrainConfig().batch_size  # what the preset leaves alone keeps its default
    cfg = make_config("mlp", "default", epochs=3, lr=None, seed=4)  # None means "not given"
    assert (cfg.arch, cfg.epochs, cfg.hidden, cfg.batch_size, cfg.seed, cfg.lr) == ("mlp", 3, (1024,), 256, 4, 5e-3)
    assert make_config("cnn", "default").clean_epochs == 1 and TrainConfig().clean_epochs == 0
    cfg = make_config("cnn", "best")
    assert (cfg.ensemble, cfg.width, cfg.epochs, cfg.clean_epochs, cfg.time_budget) == (2, 48, 12, 1, 840.0)


@pytest.mark.parametrize("call, message", [
    (lambda: make_config("resnet"), "unknown architecture 'resnet'; choose one of tutorial, mlp, cnn"),
    (lambda: make_config("cnn", "huge"), "unknown preset 'huge'; choose one of fast, default, best"),
    (lambda: make_config("cnn", "fast", colour=True), "unknown training options ['colour']"),
    (lambda: make_config("cnn", "fast", epochs=0), "epochs, batch_size and ensemble must be at least 1"),
    (lambda: make_config("cnn", "fast", distribute="ring"), "unknown distribution 'ring'"),
    (lambda: make_config("cnn", "fast", clean_epochs=-1), "clean_epochs must be 0 or more, got -1"),
])
def test_bad_configs_are_config_errors(call, message):
    with pytest.raises(ConfigError) as e:
        call()
    assert message in str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, DigitnetError)  # both still catch it


def test_config_json_round_trip():
    cfg = make_config("mlp", "best", augment=Augment(rotate=5, elastic=1.5), time_budget=60.0)
    again = TrainConfig.from_json(cfg.to_json())
    assert again == cfg and isinstance(again.augment, Augment) and isinstance(again.hidden, tuple)


def test_train_help_prints_the_presets_own_defaults():
    text = help_text("train")
    base = TrainConfig()
    assert f"--batch-size BATCH_SIZE (default: {base.batch_size}; mlp fast: {PRESETS['mlp']['fast']['batch_size']}" \
        in text
    assert f"(default: {base.lr:g}; cnn fast: {PRESETS['cnn']['fast']['lr']:g})" in text
    assert f"average N models (default: {base.ensemble}; cnn best: {PRESETS['cnn']['best']['ensemble']})" in text
    assert f"(default: {presets.DEFAULT_PRESET})" in text and f"(default: {presets.DEFAULT_ARCH})" in text
    # Every preset is listed with what it sets, and each listed value is the preset's own.
    text = text[text.index("presets (each sets"):]
    for arch, table in PRESETS.items():
        for name, values in table.items():
            line = re.search(rf"{arch} {name}: (.*?)(?: \[| (?:{'|'.join(PRESETS)}) |$)", text)
            assert line, f"{arch} {name} is not listed"
            shown = dict(kv.split("=", 1) for kv in line.group(1).split(", ") if "=" in kv)
            assert shown["epochs"] == str(values["epochs"])
            if "lr" in values:
                assert float(shown["lr"]) == values["lr"]
            if "batch_size" in values:
                assert int(shown["batch_size"]) == values["batch_size"]


def test_serve_evaluate_and_export_help_read_the_presets():
    serve = help_text("serve")
    assert f"(default: {presets.SERVE_PORT})" in serve and f"(default: {presets.Limits().workers})" in serve
    assert f"(default: {presets.DEFAULT_BACKEND})" in serve
    export = help_text("export")
    assert "{" + ",".join(presets.FORMATS) + "}" in export
    tutorial = help_text("tutorial")
    assert f"--epochs EPOCHS (default: {presets.TUTORIAL['epochs']})" in tutorial
    assert f"(default: {presets.TUTORIAL['learning_rate']})" in tutorial


def test_the_tutorial_functions_keep_the_tutorials_defaults():
    import inspect

    from digitnet.models.tutorial import train_parameters

    params = inspect.signature(train_parameters).parameters
    for key in ("learning_rate", "epochs", "batch_size"):
        assert params[key].default == presets.TUTORIAL[key]
