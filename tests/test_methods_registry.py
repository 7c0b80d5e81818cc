"""Method registry, entry-point plug-ins, recipes and the `methods list` / `train` / `generate` commands."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dreambench.cli import main
from dreambench.errors import DreambenchError, UnknownNameError
from dreambench.methods import base, registry
from dreambench.methods.base import Method, MethodConfig, get_method, list_methods
from dreambench.methods.recipes import get_recipe, resolve_config


@dataclass
class DummyConfig(MethodConfig):
    colour: int = field(default=128, metadata={"help": "grey level of every image"})


class DummyMethod(Method):
    name = "dummy-plugin"
    description = "a plug-in that paints grey squares"
    Config = DummyConfig
    trains = False
    needs_model = False

    def train(self, data, workdir):
        return None

    def generate(self, data, requests):
        return [Image.new("RGB", (8, 8), (self.config.colour,) * 3) for _ in requests]


class _FakeEntryPoint:
    name, value, group = "dummy-plugin", "tests:DummyMethod", base.ENTRY_POINT_GROUP

    def load(self):
        return DummyMethod


def test_entry_point_plugin_is_listed(monkeypatch):
    list_methods()  # entry points load into the real registry before it is swapped for a copy
    monkeypatch.setattr(registry, "METHODS", registry.METHODS.copy())  # a copy loads its entry points again
    monkeypatch.setattr(metadata, "entry_points",
                        lambda group=None: [_FakeEntryPoint()] if group == base.ENTRY_POINT_GROUP else [])
    assert get_method("dummy-plugin") is DummyMethod
    assert {"dreambooth", "dreambooth-lora", "textual-inversion", "real", "pretrained", "dummy-plugin"} <= set(
        list_methods())
    out = CliRunner().invoke(main, ["methods", "list", "--json"])
    assert out.exit_code == 0, out.output
    info = {m["name"]: m for m in json.loads(out.output)}
    assert info["dummy-plugin"]["options"] == [
        {"name": "colour", "type": "int", "default": 128, "help": "grey level of every image"}]
    text = CliRunner().invoke(main, ["methods", "list"]).output
    assert "dummy-plugin" in text and "recipe paper (default)" in text


def test_recipes_and_override_order():
    db = get_method("dreambooth")
    cfg, name = resolve_config(db)
    assert name == "paper" and cfg.lr == 5e-6 and cfg.steps == 1000 and cfg.num_class_images == 1000
    assert cfg.prior_loss_weight == 1.0 and cfg.train_text_encoder is False and cfg.with_prior_preservation
    cfg, name = resolve_config(db, "diffusers", {"lr": "1e-5", "with_prior_preservation": "off"}, steps=7)
    assert (name, cfg.lr, cfg.steps, cfg.num_class_images, cfg.with_prior_preservation) == (
        "diffusers", 1e-5, 7, 200, False)
    with pytest.raises(UnknownNameError, match="paper"):
        get_recipe(db, "nope")
    with pytest.raises(UnknownNameError, match="valid"):
        resolve_config(db, None, {"learning_rate": 1})
    with pytest.raises(DreambenchError, match="lr"):
        resolve_config(db, None, {"lr": "fast"})
    cfg, name = resolve_config(get_method("real"), None, {}, steps=5)  # training-free: steps ignored
    assert name is None
    with pytest.raises(UnknownNameError, match="dreambooth, dreambooth-lora"):
        get_method("dreambooht")


def _toy_protocol(tmp_path: Path) -> tuple[Path, Path]:
    proto = tmp_path / "proto"
    proto.mkdir()
    (proto / "subjects.csv").write_text("name,class,kind\ntoy,dog,live\n")
    (proto / "prompts.yaml").write_text(
        "class_prompt: 'a {class}'\nprompts:\n  live:\n"
        "    - {template: 'a {V} {class} in the jungle', category: recontextualization}\n"
        "    - {template: 'a {V} {class} in the snow', category: recontextualization}\n")
    data = tmp_path / "data" / "toy"
    data.mkdir(parents=True)
    for i in range(2):
        a = np.full((256, 256, 3), 60 + 80 * i, np.uint8)  # the protocol refuses photos under 256 px
        Image.fromarray(a).save(data / f"{i}.png")
    return proto, data.parent


def test_train_and_generate_commands(tmp_path):
    proto, data = _toy_protocol(tmp_path)
    res = tmp_path / "res"
    common = ["--method", "dreambooth", "--subject", "toy", "--profile", "tiny", "--protocol", str(proto),
              "--data", str(data), "--results", str(res), "--device", "cpu", "--sample-steps", "1"]
    runner = CliRunner()
    out = runner.invoke(main, ["generate", *common])
    assert out.exit_code == 2 and "dreambench train" in out.output
    out = runner.invoke(main, ["train", *common, "--steps", "2", "--set", "num_class_images=1"])
    assert out.exit_code == 0, out.output
    assert (res / "artifacts" / "dreambooth" / "toy" / "unet.safetensors").is_file()
    out = runner.invoke(main, ["generate", *common, "--images-per-prompt", "1", "--prompts", "1"])
    assert out.exit_code == 0, out.output
    assert (res / "images" / "dreambooth" / "toy" / "00_0.png").is_file()
    assert (res / "images" / "manifest.csv").is_file()
    out = runner.invoke(main, ["train", "--method", "nope", "--subject", "toy", "--results", str(res)])
    assert out.exit_code == 2 and "valid: dreambooth" in out.output
