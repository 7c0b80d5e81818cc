"""The plan of a run, as one import: the names of the modules the planner is made of.

- :mod:`dreambench.engine.runspec`: what a run asks for (:class:`RunSpec`, :class:`MethodRun`) and its checks;
- :mod:`dreambench.engine.labels`: ``--method`` labels and ``--set`` overrides;
- :mod:`dreambench.engine.paper`: the paper's table design (``--tables paper``);
- :mod:`dreambench.engine.expand`: the expansion into jobs (:func:`build_plan`);
- :mod:`dreambench.engine.jobs`: :class:`Job`, :class:`Plan`, content hashes;
- :mod:`dreambench.engine.kinds`: each job kind's spec, payload, run and currency check.
"""

from __future__ import annotations

from .expand import InputDigests, build_plan
from .jobs import Job, Plan, canonical_json, content_hash
from .kinds import ORDER as KINDS
from .kinds.subject import (
    COUNT_JOB_FIELDS,
    COUNT_KEYS,
    SAMPLING_JOB_FIELDS,
    SAMPLING_KEYS,
    reuse_keys,
    subject_inputs,
)
from .labels import method_runs, parse_method_label, parse_sets
from .paper import NUM_INPUTS_SUBJECTS, PAPER_CLASS_PROMPT_SAMPLES, paper_method_runs
from .runspec import (
    MethodRun,
    RunSpec,
    checked_config,
    resolved_config,
    role,
    tables_available,
    truncated_protocol,
    validate_spec,
)

__all__ = [
    "COUNT_JOB_FIELDS", "COUNT_KEYS", "KINDS", "NUM_INPUTS_SUBJECTS", "PAPER_CLASS_PROMPT_SAMPLES",
    "SAMPLING_JOB_FIELDS", "SAMPLING_KEYS", "InputDigests", "Job", "MethodRun", "Plan", "RunSpec",
    "build_plan", "canonical_json", "checked_config", "content_hash", "method_runs", "paper_method_runs",
    "parse_method_label", "parse_sets", "resolved_config", "reuse_keys", "role", "subject_inputs",
    "tables_available", "truncated_protocol", "validate_spec",
]
