"""``dreambench doctor`` and the same preflight in ``dreambench run``: every model loads and runs before any
job; bad weights are refused in seconds with one line per problem naming a flag of the command run."""

from __future__ import annotations

import json
import time

import pytest
import torch
from click.testing import CliRunner
from realrun import run_cli

from dreambench.cli import main
from dreambench.models import build_dino, get_profile


@pytest.fixture(scope="module")
def dino_file(tmp_path_factory):
    """A tiny DINO state dict with weights moved away from the seeded init (so loading it is visible)."""
    bb = build_dino(get_profile("tiny"))
    with torch.no_grad():
        for p in bb.model.parameters():
            p.add_(0.01)
    path = tmp_path_factory.mktemp("w") / "dino.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in bb.model.state_dict().items()}, str(path))
    return path


def test_doctor_prints_one_row_per_model(dino_file):
    res = CliRunner().invoke(main, ["doctor", "--profile", "tiny", "--device", "cpu", "--dino-weights", str(dino_file)])
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert lines[0].split()[:6] == ["model", "where", "dtype", "digest", "weights", "seconds"]
    rows = {ln.split("  ")[0].strip(): ln for ln in lines[1:-1]}
    assert list(rows) == ["sd unet", "sd vae", "sd text encoder", "dino vit_small_patch16_224.dino",
                          "clip ViT-B-32-quickgelu/openai", "lpips trunk alex", "lpips linear alex"]
    from dreambench.models.digest import file_digest

    dino = rows["dino vit_small_patch16_224.dino"].split()
    assert dino[2:6] == ["file", "float32", file_digest(dino_file), "pretrained"]
    assert "config" in rows["sd unet"] and "random-init" in rows["sd unet"]
    assert lines[-1] == "ok: 7 models load and run"


def test_doctor_bad_weights_one_line_per_problem(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not safetensors")
    res = CliRunner().invoke(main, ["doctor", "--profile", "tiny", "--device", "cpu", "--dino-weights", str(junk),
                                    "--clip-weights", str(tmp_path / "missing.pt"), "--model", str(tmp_path)])
    assert res.exit_code == 2
    errors = res.stderr.strip().splitlines()
    assert "Traceback" not in res.output
    assert any(e.startswith(f"error: --dino-weights {junk}") for e in errors), errors
    assert any(e.startswith(f"error: --clip-weights {tmp_path / 'missing.pt'}") for e in errors), errors
    assert any("--model" in e and "profile tiny builds random-init" in e for e in errors), errors


def test_run_refuses_a_backbone_it_cannot_load_before_any_job(tmp_path, dataset_dir, cli_env):
    junk = tmp_path / "clip.pt"
    torch.save({"foo": torch.zeros(1)}, junk)
    results = tmp_path / "r"
    t = time.perf_counter()
    proc = run_cli(["--results", results, "run", "--method", "pretrained", "--profile", "tiny", "--subjects", "dog",
                    "--prompts", "1", "--images-per-prompt", "1", "--data", dataset_dir, "--clip-weights", junk],
                   cli_env, check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"error: --clip-weights {junk}: unsupported layout for CLIP weights" in proc.stderr
    assert "Traceback" not in proc.stderr and time.perf_counter() - t < 120
    made = [p for p in results.rglob("*")] if results.exists() else []
    assert not [p for p in made if p.suffix in (".png", ".safetensors", ".sqlite")], made


def test_run_passes_weights_to_scoring_and_records_provenance(tmp_path, dataset_dir, cli_env, dino_file):
    results = tmp_path / "r"
    args = ["--results", results, "run", "--method", "pretrained", "--profile", "tiny", "--subjects", "dog",
            "--prompts", "1", "--images-per-prompt", "2", "--data", dataset_dir, "--dino-weights", dino_file]
    run_cli(args, cli_env)
    from dreambench.models.digest import file_digest
    from dreambench.provenance import sd_provenance

    meta = json.loads((results / "scores" / "score_meta.json").read_text())
    assert meta["backbones"]["dino"]["weights_file"] == str(dino_file)
    assert meta["backbones"]["dino"]["digest"] == file_digest(dino_file)
    assert meta["backbones"]["dino"]["weights_id"] == f"file:{file_digest(dino_file)}"
    assert meta["backbones"]["clip"]["where"] == "random-init" and meta["backbones"]["clip"]["digest"]
    prov = sd_provenance("tiny")
    assert meta["sd"]["pretrained"] == {"sd_source": "config:tiny", "sd_digest": prov["sd_digest"]}
    info = json.loads((results / "images" / "pretrained" / "method.json").read_text())
    assert (info["sd_source"], info["sd_digest"]) == ("config:tiny", prov["sd_digest"])
    import pandas as pd

    manifest = pd.read_csv(results / "images" / "manifest.csv")
    assert set(manifest["sd_digest"]) == {prov["sd_digest"]} and set(manifest["sd_source"]) == {"config:tiny"}
    # the tables' metadata (and so the report header, which prints the same lines) names the SD source
    line = f"stable diffusion: config:tiny (digest {prov['sd_digest']})"
    tables = [p for p in (results / "tables").rglob("*") if p.is_file() and line in p.read_text(errors="ignore")]
    assert tables, f"no table names the SD source ({line})"
    from dreambench.tables.load import load_results, run_meta

    assert line in run_meta(load_results(results)).lines()


def test_resumed_run_pays_nothing_for_the_preflight(monkeypatch, tmp_path):
    """The second preflight with the same options and files loads no model (cached by digests)."""
    from dreambench import preflight
    from dreambench.commands import doctor
    from dreambench.engine.plan import MethodRun, RunSpec, build_plan
    from dreambench.protocol import load_protocol

    monkeypatch.setenv("DREAMBENCH_CACHE", str(tmp_path / "cache"))
    calls = []
    real = preflight.run_checks
    monkeypatch.setattr(preflight, "run_checks", lambda *a, **k: calls.append(a) or real(*a, **k))
    spec = RunSpec([MethodRun("pretrained", "pretrained")], ["dog"], "tiny", prompts=1, images_per_prompt=1)
    plan = build_plan(spec, load_protocol("dreambooth"))
    doctor.run_preflight(plan, tmp_path / "r", "cpu")
    t = time.perf_counter()
    doctor.run_preflight(plan, tmp_path / "r", "cpu")
    assert len(calls) == 1 and time.perf_counter() - t < 5
    assert (tmp_path / "cache" / "preflight.json").is_file()


def test_run_help_lists_the_weight_flags():
    res = CliRunner().invoke(main, ["run", "--help"])
    for flag in ("--dino-weights", "--clip-weights", "--lpips-weights", "--model"):
        assert flag in res.stdout


def test_doctor_with_an_empty_hub_cache_names_the_flags(tmp_path, cli_env):
    """sd15 with a local fp16-variant folder and an empty hub cache: SD loads (folder, fp32), DINO and CLIP
    and the LPIPS trunk are problems naming --dino-weights / --clip-weights / --lpips-weights; no library
    log noise, exit 2."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    from dreambench.models import load_sd

    sd = load_sd(get_profile("tiny"))
    pipe = StableDiffusionPipeline(unet=sd.unet, vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer,
                                   scheduler=PNDMScheduler.from_config(sd.scheduler_config), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.to(torch.float16).save_pretrained(tmp_path / "sd", variant="fp16")
    env = {**cli_env, "HF_HUB_CACHE": str(tmp_path / "hub"), "TORCH_HOME": str(tmp_path / "torch"),
           "DREAMBENCH_CACHE": str(tmp_path / "cache")}
    proc = run_cli(["doctor", "--profile", "sd15", "--model", tmp_path / "sd", "--device", "cpu"], env, check=False)
    assert proc.returncode == 2
    rows = {ln.split("  ")[0]: ln for ln in proc.stdout.splitlines()}
    assert "folder" in rows["sd unet"] and "float32" in rows["sd unet"] and "pretrained" in rows["sd unet"]
    assert "ERROR:root" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 3, proc.stderr
    assert "--dino-weights FILE" in errors[0] and "--clip-weights FILE" in errors[1]
    assert "--lpips-weights FILE" in errors[2]  # DIV would otherwise come from a random trunk, unsaid
    assert str(tmp_path / "hub") in errors[0]


def test_preflight_key_imports_no_model_library(tmp_path):
    """A resumed run's plan and preflight key must not import torch, diffusers, open_clip, timm or
    transformers (seconds of imports on every resume): random-init digests and pretrained backbones' hub
    repositories come from the cache once a first run has looked them up."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from dreambench.engine.plan import MethodRun, RunSpec, build_plan\n"
        "from dreambench.protocol import load_protocol\n"
        "from dreambench.preflight import Needs, check_key\n"
        "profile, sd = sys.argv[1], sys.argv[2] == 'sd'\n"
        "spec = RunSpec([MethodRun('dreambooth', 'dreambooth')], ['dog'], profile, prompts=1, images_per_prompt=1)\n"
        "plan = build_plan(spec, load_protocol('dreambooth'))\n"
        "check_key(profile, None, 'paper', {}, None, Needs(sd=sd, scoring=True))\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'diffusers', 'open_clip', 'timm', 'transformers'}))\n"
    )
    env = {**__import__("os").environ, "DREAMBENCH_CACHE": str(tmp_path / "cache"),
           "HF_HUB_CACHE": str(tmp_path / "hub")}
    # tiny: SD and backbones random-init; sd15 (SD left out: its hub id is not in this cache): pretrained
    # backbones, whose hub repositories a cold cache reads from timm / open_clip once.
    for profile, sd in (("tiny", "sd"), ("sd15", "no-sd")):
        args = [sys.executable, "-c", code, profile, sd]
        subprocess.run(args, env=env, check=True, capture_output=True, text=True)  # warms the caches
        out = subprocess.run(args, env=env, check=True, capture_output=True, text=True)
        assert out.stdout.strip().splitlines()[-1] == "[]", (profile, out.stdout)


def test_library_preflight_raises_instead_of_exiting(tmp_path, monkeypatch):
    """``dreambench.evaluate`` runs the preflight as library code: a failure is a PreflightError (a
    DreambenchError the CLI prints one problem a line), never a SystemExit out of a notebook."""
    from dreambench import preflight
    from dreambench.engine.plan import MethodRun, RunSpec, build_plan
    from dreambench.protocol import load_protocol

    monkeypatch.setenv("DREAMBENCH_CACHE", str(tmp_path / "cache"))
    broken = tmp_path / "broken-dino.safetensors"
    broken.write_bytes(b"not a safetensors file")
    spec = RunSpec([MethodRun("pretrained", "pretrained")], ["dog"], "tiny", prompts=1, images_per_prompt=1,
                   metric_weights={"dino": str(broken)})
    with pytest.raises(preflight.PreflightError) as err:
        preflight.check_plan(build_plan(spec, load_protocol("dreambooth")), "cpu")
    assert "broken-dino.safetensors" in str(err.value) and err.value.problems
