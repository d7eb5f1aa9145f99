"""Role examples as token ids: the prompt exactly as the agent sends it, then the target.

The prompt and the completion are tokenized separately, as at inference time, where the
prompt is encoded alone and the model continues it; loss is taken on the completion only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from chorus.errors import ChorusError
from chorus.runtime.chat_format import render_with_tokenizer, written_calls, written_json


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    target_start: int  # ids[target_start:] are the completion the loss is taken on


def read_examples(data: Path, roles: list[str], split: str = "train") -> list[dict]:
    """The examples of `roles` in DATA/SPLIT/ROLE.jsonl, in file order."""
    examples = []
    for role in roles:
        path = Path(data) / split / f"{role}.jsonl"
        if not path.is_file():
            raise ChorusError(f"No {split} data for role '{role}': {path} is missing. "
                              "Generate it with `chorus adapters data --out DIR`.")
        with path.open() as lines:
            for number, line in enumerate(lines, 1):
                try:
                    example = json.loads(line)
                    example["messages"], example["target"]  # noqa: B018 (both required)
                except (json.JSONDecodeError, KeyError, TypeError) as error:
                    raise ChorusError(f"{path}:{number}: not a role example "
                                      f"({{messages, target}}): {error}") from error
                examples.append(example)
    return examples


def encode(tokenizer, messages: list[dict], target: str, tools: list[dict] = (),
           calls: list[dict] | None = None, value: Any = None) -> Encoded:
    """`calls`: the target is these tool calls; `value`: it is this JSON value (a planner's
    decision, a verdict); either is written as the model's template has it."""
    if calls is not None:
        target = written_calls(calls, tokenizer.chat_template or "")
    elif value is not None:
        target = written_json(value, tokenizer.chat_template or "")
    prompt = render_with_tokenizer(tokenizer, messages, tools)
    full = render_with_tokenizer(tokenizer, [*messages, {"role": "assistant", "content": target}],
                                 tools, add_generation_prompt=False)
    if not full.startswith(prompt):
        raise ChorusError("The chat template does not render an assistant turn as the "
                          "generation prompt followed by its content; cannot train on it")
    completion = full[len(prompt):].rstrip()  # the answer and its end-of-turn token
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    return Encoded(ids=prompt_ids + completion_ids, target_start=len(prompt_ids))


def collate(batch: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ids, their attention mask, and where each row's completion lies."""
    width = max(len(item.ids) for item in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, item in enumerate(batch):
        ids[row, :len(item.ids)] = torch.tensor(item.ids)
        mask[row, :len(item.ids)] = 1
    spans = torch.tensor([(item.target_start, len(item.ids)) for item in batch])
    return {"input_ids": ids, "attention_mask": mask, "spans": spans}
