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
              help="Protocol name (subjects/<name>.csv + prompts/<name>.yaml) or a folder with subjects.csv and prompts.yaml.")
@click.option("--identifier", default="sks", show_default=True, help="Unique identifier rendered into prompts.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: a list of subjects with name, class, kind, prompts.")
def show(name: str, identifier: str, as_json: bool) -> None:
    """Print the subjects and their 25 rendered prompts in protocol order."""
    proto = load_protocol(name)
    records = proto.to_records(identifier)
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    n_obj = sum(s.kind == "object" for s in proto.subjects)
    click.echo(f"protocol {proto.name}: {len(proto.subjects)} subjects ({n_obj} objects, "
               f"{len(proto.subjects) - n_obj} live)")
    for rec, subj in zip(records, proto.subjects):
        click.echo(f"\n{rec['name']}  class={rec['class']!r}  kind={rec['kind']}")
        for p, text in zip(proto.prompts_for(subj), rec["prompts"]):
            click.echo(f"  {p.index:2d} [{p.category[:7]}] {text}")


COMMANDS = [protocol_group]
