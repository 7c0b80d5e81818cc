"""``dreambench protocol show``: the subjects and every rendered prompt."""

from __future__ import annotations

import json

import click

from ..protocol import load_protocol


@click.group("protocol")
def protocol_group() -> None:
    """Inspect the evaluation protocol (subjects and prompts)."""


@protocol_group.command("show")
@click.option("--protocol", "name", default="dreambooth", show_default=True,
              help="Protocol name (dreambooth, or dreambench-plus once its data is fetched) or a folder with "
                   "subjects.csv and prompts.yaml.")
@click.option("--identifier", default="sks", show_default=True, help="Unique identifier rendered into prompts.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: a list of subjects with name, class, kind, prompts.")
def show(name: str, identifier: str, as_json: bool) -> None:
    """Print the subjects and their rendered prompts in protocol order."""
    proto = load_protocol(name)
    records = proto.to_records(identifier)
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    kinds = ", ".join(f"{sum(s.kind == k for s in proto.subjects)} {k}" for k in proto.kinds)
    n_prompts = sum(len(r["prompts"]) for r in records)
    click.echo(f"protocol {proto.name}: {len(proto.subjects)} subjects ({kinds}), {n_prompts} prompts")
    for rec, subj in zip(records, proto.subjects):
        noun = "class" if proto.identifier else "subject"
        click.echo(f"\n{rec['name']}  {noun}={rec['class']!r}  kind={rec['kind']}")
        for p, text in zip(proto.prompts_for(subj), rec["prompts"]):
            click.echo(f"  {p.index:2d} [{p.category[:7]}] {text}")


COMMANDS = [protocol_group]
