"""Prompt templates live in files (chorus/agents/prompts/*.md), filled with `$name` fields."""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template

from chorus.errors import ChorusError


@cache
def load_template(name: str) -> Template:
    try:
        text = resources.files("chorus.agents").joinpath("prompts", f"{name}.md").read_text()
    except FileNotFoundError as error:
        raise ChorusError(f"No prompt template named '{name}' in chorus/agents/prompts") from error
    return Template(text.strip())


def render(template: Template | str, **fields: str) -> str:
    if isinstance(template, str):
        template = Template(template)
    try:
        return template.substitute(**fields).strip()
    except KeyError as error:
        raise ChorusError(f"Prompt template needs a value for ${error.args[0]}") from error
