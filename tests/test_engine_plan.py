"""Plans: content-hash ids, label handling, the paper plan, --set parsing, the dry run."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from dreambench.cli import main
from dreambench.engine.plan import MethodRun, RunSpec, build_plan, content_hash, paper_method_runs, parse_sets
from dreambench.errors import DreambenchError
from dreambench.protocol import load_protocol


@pytest.fixture(scope="module")
def protocol():
    return load_protocol("dreambooth")


def _spec(**kw):
    base = {"methods": [MethodRun("dreambooth", "dreambooth")], "subjects": ["dog", "backpack"], "profile": "tiny",
                "steps": 20, "prompts": 2, "images_per_prompt": 2}
    base.update(kw)
    return RunSpec(**base)


def test_content_hash_is_canonical():
    assert content_hash({"a": 1, "b": [1, 2]}) == content_hash({"b": [1, 2], "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})
    assert len(content_hash({})) == 16


def test_plan_jobs_and_order(protocol):
    plan = build_plan(_spec(), protocol)
    kinds = [j.kind for j in plan.jobs]
    assert kinds == ["class_images", "class_images", "subject", "subject", "score", "score", "score_merge",
                     "tables"] or kinds == ["class_images", "class_images", "subject", "subject", "score", "score",
                                            "score_merge"]
    ids = [j.id for j in plan.jobs]
    assert len(set(ids)) == len(ids)
    subj = plan.by_kind("subject")
    assert {j.subject for j in subj} == {"dog", "backpack"}
    assert all(j.images == 2 * 2 for j in subj)  # 2 prompts x 2 images
    # Every subject job depends on exactly the class-image job of its class noun.
    class_ids = {j.subject: j.id for j in plan.by_kind("class_images")}
    assert {j.subject: j.deps for j in subj} == {"dog": [class_ids["dog"]], "backpack": [class_ids["backpack"]]}
    # One score job per (label, subject), right after its subject job; the merge waits for all of them.
    parts = plan.by_kind("score")
    by_subject = {j.subject: j.id for j in subj}
    assert {p.subject: p.deps for p in parts} == {s: [i] for s, i in by_subject.items()}
    assert all(p.spec["label"] == "dreambooth" for p in parts)
    (merge,) = plan.by_kind("score_merge")
    assert merge.deps == sorted(p.id for p in parts) and merge.spec["run_if_deps_failed"]
    assert merge.spec["parts"] == sorted([["dreambooth", s] for s in by_subject])
    # Positions respect dependencies.
    pos = {j.id: i for i, j in enumerate(plan.jobs)}
    assert all(pos[d] < pos[j.id] for j in plan.jobs for d in j.deps)


def test_ids_are_stable_and_follow_content(protocol):
    a = build_plan(_spec(), protocol)
    b = build_plan(_spec(), protocol)
    assert [j.id for j in a.jobs] == [j.id for j in b.jobs]
    # "--set lr=0.002" and lr=2e-3 are the same job; another lr is another job (subject jobs only).
    c = build_plan(_spec(methods=[MethodRun("dreambooth", "dreambooth", {"lr": "0.002"})]), protocol)
    d = build_plan(_spec(methods=[MethodRun("dreambooth", "dreambooth", {"lr": 2e-3})]), protocol)
    assert [j.id for j in c.jobs] == [j.id for j in d.jobs]
    ids_a = {j.id for j in a.by_kind("subject")}
    ids_c = {j.id for j in c.by_kind("subject")}
    assert ids_a.isdisjoint(ids_c)
    assert {j.id for j in a.by_kind("class_images")} == {j.id for j in c.by_kind("class_images")}
    # Steps, seed and prompts change subject ids too.
    for change in ({"steps": 21}, {"seed": 1}, {"prompts": 3}):
        e = build_plan(_spec(**change), protocol)
        assert ids_a.isdisjoint({j.id for j in e.by_kind("subject")}), change


def test_label_key_ignores_counts_but_not_config(protocol):
    a = build_plan(_spec(), protocol).by_kind("subject")[0]
    more = build_plan(_spec(prompts=3, images_per_prompt=4), protocol).by_kind("subject")[0]
    other = build_plan(_spec(steps=30), protocol).by_kind("subject")[0]
    assert a.id != more.id and a.spec["label_key"] == more.spec["label_key"]
    assert a.spec["label_key"] != other.spec["label_key"]


def test_builtin_revision_is_part_of_its_jobs_only(protocol, monkeypatch):
    """A built-in's ``revision`` (methods.identity) changes its own jobs' ids, no other method's, and no label
    key (it is not a label setting: the runner re-makes the label); at the base revision it adds nothing,
    so folders made before identities existed keep their ids."""
    from dreambench.methods.base import get_method
    from dreambench.methods.identity import identity_payload, method_identity

    db = get_method("dreambooth")
    assert identity_payload(method_identity(db)) == {}
    methods = [MethodRun("dreambooth", "dreambooth"), MethodRun("real", "real")]
    before = {j.label: j for j in build_plan(_spec(methods=methods), protocol).by_kind("subject")}
    monkeypatch.setattr(db, "revision", 2)
    after = {j.label: j for j in build_plan(_spec(methods=methods), protocol).by_kind("subject")}
    assert after["dreambooth"].id != before["dreambooth"].id
    assert after["dreambooth"].spec["label_key"] == before["dreambooth"].spec["label_key"]
    assert (after["real"].id, after["real"].spec["label_key"]) == (before["real"].id, before["real"].spec["label_key"])


def test_paper_plan_labels(protocol):
    runs = paper_method_runs()
    labels = [r.label for r in runs]
    for want in ["dreambooth", "textual-inversion", "real", "dreambooth-noppl", "dreambooth-noun-none",
                 "dreambooth-noun-wrong"] + [f"dreambooth-n{k}" for k in range(1, 6)]:
        assert want in labels
    by = {r.label: r for r in runs}
    assert by["dreambooth"].config["with_prior_preservation"] is True
    assert by["dreambooth-noppl"].config["with_prior_preservation"] is False
    assert by["dreambooth"].class_prompt_samples > 0 and by["dreambooth-noppl"].class_prompt_samples > 0
    assert by["dreambooth-noun-wrong"].class_noun_mode == "wrong"
    assert by["dreambooth-n3"].num_inputs == 3 and by["dreambooth-n3"].subjects == ["backpack", "dog"]
    plan = build_plan(RunSpec(runs, ["dog", "cat"], "tiny", prompts=1, images_per_prompt=4), protocol)
    n_jobs = [j for j in plan.by_kind("subject") if j.label[len("dreambooth-n"):].isdigit()]
    assert {j.subject for j in n_jobs} == {"dog"}  # Tables 5/6 only on backpack and dog


def test_parse_sets():
    out = parse_sets(["lr=1e-4", "dreambooth.steps=5"], ["dreambooth", "real"])
    assert out["dreambooth"] == {"lr": "1e-4", "steps": "5"}
    assert out["real"] == {}  # real has no lr: a bare key goes only to methods that have it
    with pytest.raises(DreambenchError):
        parse_sets(["nosuchfield=1"], ["dreambooth"])
    with pytest.raises(DreambenchError):
        parse_sets(["lr"], ["dreambooth"])
    with pytest.raises(DreambenchError):
        parse_sets(["other.lr=1"], ["dreambooth"])


def test_duplicate_labels_rejected(protocol):
    with pytest.raises(DreambenchError):
        build_plan(_spec(methods=[MethodRun("dreambooth", "dreambooth"), MethodRun("dreambooth", "dreambooth")]),
                   protocol)


def test_dry_run_cli(tmp_path):
    res = CliRunner().invoke(main, ["--results", str(tmp_path), "run", "--method", "dreambooth", "--profile", "tiny",
                                    "--subjects", "dog,backpack", "--steps", "20", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "dreambooth" in res.output and "jobs: " in res.output and "estimated device-hours" in res.output
    assert "class images 'dog'" in res.output
    assert not (tmp_path / "state.sqlite").exists()  # a dry run writes nothing
    res = CliRunner().invoke(main, ["--results", str(tmp_path), "run", "--tables", "paper", "--profile", "tiny",
                                    "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "dreambooth-n5" in res.output and "dreambooth-noun-wrong" in res.output


def test_dry_run_uses_bench_file(tmp_path, protocol):
    from dreambench.engine import cost

    plan = build_plan(_spec(), protocol)
    default = cost.estimate(plan, cost.load_rates(tmp_path, "tiny", "cuda"), 4)
    assert default["device_hours"] is None and "no calibration for this device" in default["basis"]
    default = cost.estimate(plan, cost.load_rates(tmp_path, "sd15", "cuda"), 4)
    assert "calibration" in default["basis"] and "scoring not estimated" in default["basis"]
    bench = {"profile": "tiny", "device": "cpu", "device_name": "test-cpu",
             "reference": {"train_steps_per_s": 2.0}, "methods": {"dreambooth": {"train_steps_per_s": 1.0}},
             "sampling": {"images_per_s": 0.5, "sample_steps": 4}, "scoring": {"images_per_s": 100.0}}
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    est = cost.estimate(plan, cost.load_rates(tmp_path, "tiny", "cpu"), 4)
    assert "test-cpu" in est["basis"]
    # Issue 25: a bench of another device is not used; no end-to-end scoring rate: scoring not estimated.
    assert cost.estimate(plan, cost.load_rates(tmp_path, "tiny", "cuda"), 4)["device_hours"] is None
    assert not est["scoring_estimated"] and est["device_seconds"]["score"] == 0
    # 2 subjects x (20 steps / 1 step/s + 4 images / 0.5 images/s) = 56 s for the subject jobs.
    assert est["device_seconds"]["subject"] == pytest.approx(56.0)
    assert est["device_seconds"]["class_images"] == pytest.approx(2 * 4 / 0.5)


def test_estimate_uses_packed_training_and_end_to_end_scoring(tmp_path, protocol):
    from dreambench.engine import cost

    plan = build_plan(_spec(), protocol)
    default = cost.load_rates(tmp_path, "sd15-random", "cuda")
    # The packaged calibration gives the suite-defaults rates and, for comparison, the reference loop's.
    assert default["train_steps_per_s"] > default["reference"]["train_steps_per_s"]
    est = cost.estimate(plan, default, 4)
    assert est["reference_device_hours"] > est["device_hours"]
    bench = {"profile": "tiny", "device": "cpu", "device_name": "test-cpu",
             "reference": {"train_steps_per_s": 2.0}, "methods": {"dreambooth": {"train_steps_per_s": 1.0}},
             "packing": {"method": "dreambooth", "jobs": 4, "aggregate_steps_per_s": 4.0},
             "sampling": {"images_per_s": 0.5, "sample_steps": 4}, "scoring": {"images_per_s": 1e9},
             "score_folder": {"images_per_s": 8.0}}
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    est = cost.estimate(plan, cost.load_rates(tmp_path, "tiny", "cpu"), 4)
    # 2 subjects x (20 steps / 4 packed steps/s + 4 images / 0.5 images/s) = 26 s.
    assert est["device_seconds"]["subject"] == pytest.approx(26.0)
    assert est["device_seconds"]["score"] == pytest.approx(8 / 8.0)  # 8 images (two parts) at the end-to-end rate
    bench["packing"]["aggregate_steps_per_s"] = 0.5  # packing that loses to one job is not used
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    est = cost.estimate(plan, cost.load_rates(tmp_path, "tiny", "cpu"), 4)
    assert est["device_seconds"]["subject"] == pytest.approx(56.0)


def test_ids_hold_the_photos_and_weights_jobs_read(protocol, dataset_dir, tmp_path):
    """Photos (names and bytes, of the given --data folder) and the SD weights digest are part of the
    ids of exactly the jobs that read them; the reuse keys follow, counts aside (issue 20.1)."""
    from dreambench.engine.plan import InputDigests

    data = tmp_path / "data"
    for s in ("dog", "backpack"):
        shutil.copytree(dataset_dir / s, data / s)
    spec = _spec(methods=[MethodRun(m, m) for m in ("dreambooth", "pretrained", "real")])

    def ids(folder, digest="w1", **kw):
        plan = build_plan(_spec(methods=spec.methods, **kw), protocol, InputDigests(folder, digest))
        return {(j.kind, j.label, j.subject): j for j in plan.jobs}

    base = ids(data)
    assert {k: j.id for k, j in ids(data).items()} == {k: j.id for k, j in base.items()}
    moved = tmp_path / "elsewhere"
    shutil.copytree(data, moved)
    assert {k: j.id for k, j in ids(moved).items()} == {k: j.id for k, j in base.items()}  # not the path
    shutil.copy(min((dataset_dir / "cat").glob("*.jpg")), data / "dog" / "zz.jpg")
    added = ids(data)
    changed = {k for k in base if base[k].id != added[k].id}
    assert {k for k in changed if k[0] == "subject"} == {("subject", "dreambooth", "dog"), ("subject", "real", "dog")}
    assert not any(k[0] == "class_images" for k in changed)
    db = ("subject", "dreambooth", "dog")
    assert base[db].spec["keys"]["train"] != added[db].spec["keys"]["train"]
    # Other weights: every job that uses the model, and the class images; real reads no weights.
    other = ids(data, "w2")
    changed = {k for k in added if added[k].id != other[k].id and k[0] in ("subject", "class_images")}
    assert changed == {k for k in added if k[0] == "class_images" or (k[0] == "subject" and k[1] != "real")}
    # More prompts or images: another job, but the same keys (what is on disk is reused).
    more = ids(data, images_per_prompt=3, prompts=3)
    assert more[db].id != added[db].id and more[db].spec["keys"] == added[db].spec["keys"]
    fewer_steps = ids(data, sample_steps=3)  # the images' sampler (and the class images', so training too)
    assert fewer_steps[db].spec["keys"]["images"] != added[db].spec["keys"]["images"]
    assert "train" not in added[("subject", "pretrained", "dog")].spec["keys"]


def test_progress_weights_follow_estimated_cost(tmp_path, protocol):
    """Issue 25: the run's progress bar (and its ETA) advances by each job's estimated cost: a training
    job counts for far more than the tables job, also on a device without calibration."""
    from dreambench.engine import cost
    from dreambench.engine.runner import job_weights

    plan = build_plan(_spec(), protocol)
    for device in ("cpu", "cuda"):
        weights = job_weights(plan.jobs, cost.relative_job_seconds(plan, cost.load_rates(tmp_path, "tiny", device), 4))
        subject, tables = plan.by_kind("subject")[0].id, plan.by_kind("tables")[0].id
        assert weights[subject] > 50 * weights[tables] > 0, weights
    assert set(job_weights(plan.jobs, {}).values()) == {1.0}


def test_progress_bar_never_passes_its_total(tmp_path, protocol):
    """Shares summed in another order than the bar's total passed it by a rounding error: tqdm warned
    'clamping frac to range [0, 1]' at the end of every run."""
    import warnings

    from dreambench.engine import cost
    from dreambench.engine.runner import RunOptions, _JobsBar, job_weights

    plan = build_plan(_spec(), protocol)
    weights = job_weights(plan.jobs, cost.relative_job_seconds(plan, cost.load_rates(tmp_path, "tiny", "cpu"), 4))
    weights = {jid: w + 1 / 3 for jid, w in weights.items()}  # shares with no short decimal form
    bar = _JobsBar(plan.jobs, RunOptions(tmp_path, tmp_path, progress=True, job_weights=weights))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for job in reversed(plan.jobs):
            bar.advance(job.id)
        bar.close()
    assert bar.bar.n == pytest.approx(bar.bar.total)


def test_cpu_dry_run_is_not_estimated_from_another_device(tmp_path, dataset_dir):
    """Issue 25: a CPU tiny run shows no H100 figures: no calibration for this device, and how to measure one."""
    from click.testing import CliRunner

    from dreambench.cli import main

    r = CliRunner().invoke(main, ["--results", str(tmp_path / "r"), "run", "--dry-run", "--method", "dreambooth",
                                  "--profile", "tiny", "--subjects", "dog", "--device", "cpu", "--data", str(dataset_dir)])
    assert r.exit_code == 0, r.output
    assert "estimated device-hours: none" in r.output and "no calibration for this device (cpu, profile tiny)" in r.output
    assert "bench --profile tiny --device cpu" in r.output


def test_calibration_basis_names_no_path_of_the_build_machine(tmp_path):
    """Issue 25: what `--dry-run` prints of the packaged calibration names no absolute path."""
    import re

    from dreambench.engine import cost

    basis = cost.load_rates(tmp_path, "sd15", "cuda")["basis"]
    assert "H100" in basis and not re.search(r"(^|[\s(])/\w", basis), basis
