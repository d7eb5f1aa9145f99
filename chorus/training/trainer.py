"""LoRA training of one role adapter on the shared base model, on a CPU.

Deterministic from its seed: the example order of every epoch is a function of (seed, epoch)
and the learning rate a function of the step, so a run that was interrupted and resumed from
its checkpoint ends with the same weights as one that never stopped. A checkpoint (adapter
weights, optimizer state, losses) is written every few steps and on Ctrl-C.

Two things make a step affordable on two cores: the vocabulary projection is computed only
at the completion's positions (the prompt's logits are never needed), and the forward runs
under bfloat16 autocast where the CPU has bf16 instructions, while the LoRA weights and the
optimizer stay in float32 (benchmarks/RESULTS.md has the step times).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from chorus.errors import ChorusError
from chorus.runtime import Model
from chorus.runtime.local import trainable_backend
from chorus.runtime.manifest import (
    AdapterManifest,
    BaseModelRecord,
    TrainingRecord,
    write_manifest,
)
from chorus.training.dataset import Encoded, collate, encode, read_examples
from chorus.training.examples import data_version

StepCallback = Callable[[int, float], None]  # (steps done, loss of the step)


@dataclass(frozen=True)
class TrainingPlan:
    name: str
    roles: list[str]
    data: str
    output: str
    steps: int = 120
    batch_size: int = 4
    learning_rate: float = 1e-3
    rank: int = 8
    seed: int = 0
    from_adapter: str | None = None
    precision: str = "bfloat16"  # autocast dtype of the forward; "float32" turns it off
    max_tokens: int = 768  # longer examples are skipped, not cut
    checkpoint_every: int = 10
    warmup_steps: int = 10

    def learning_rate_at(self, step: int) -> float:
        """Linear warm-up, then cosine decay to a tenth."""
        if step < self.warmup_steps:
            return self.learning_rate * (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        return self.learning_rate * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))

    def identity(self) -> dict:
        """What a checkpoint must agree on to be resumed (where it is written does not)."""
        return {key: value for key, value in asdict(self).items()
                if key not in ("output", "checkpoint_every")}


@dataclass
class TrainingResult:
    path: Path
    losses: list[float]
    seconds: float
    resumed_at: int  # 0 for a fresh run
    skipped: int  # examples longer than max_tokens
    step_seconds: list[float] = field(default_factory=list)


def train(model: Model, plan: TrainingPlan, *, command: str | None = None,
          on_step: StepCallback | None = None, restart: bool = False) -> TrainingResult:
    """Train adapter `plan.name` (replacing one of that name on `model`) and save it with
    its manifest in `plan.output`; an unfinished run there is resumed."""
    output = Path(plan.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    examples, skipped = _encoded(model, plan)
    checkpoint_path = checkpoint_of(output)
    if restart:
        checkpoint_path.unlink(missing_ok=True)
    checkpoint = _read_checkpoint(checkpoint_path, plan)

    backend = trainable_backend(model)
    registry = backend.adapters
    if plan.name in registry:
        registry.remove(plan.name)
    if plan.from_adapter:
        registry.load(plan.from_adapter, name=plan.name)
    else:
        registry.create(plan.name, rank=plan.rank, seed=plan.seed)

    losses: list[float] = []
    step_seconds: list[float] = []
    seconds = 0.0
    with registry.trainable(plan.name) as (module, parameters):
        optimizer = torch.optim.AdamW(parameters, lr=plan.learning_rate, weight_decay=0.0)
        if checkpoint is not None:
            with torch.no_grad():
                for parameter, saved in zip(parameters, checkpoint["weights"], strict=True):
                    parameter.copy_(saved)
            optimizer.load_state_dict(checkpoint["optimizer"])
            losses, seconds = list(checkpoint["losses"]), checkpoint["seconds"]
        resumed_at = len(losses)
        order = _batches(len(examples), plan)
        pad_id = backend.tokenizer.pad_token_id
        step = resumed_at
        try:
            for step in range(resumed_at, plan.steps):
                started = time.perf_counter()
                for group in optimizer.param_groups:
                    group["lr"] = plan.learning_rate_at(step)
                batch = collate([examples[i] for i in order(step)], pad_id)
                loss = completion_loss(module, batch, plan.precision)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(loss.item())
                step_seconds.append(time.perf_counter() - started)
                seconds += step_seconds[-1]
                if (step + 1) % plan.checkpoint_every == 0 and step + 1 < plan.steps:
                    _write_checkpoint(checkpoint_path, plan, parameters, optimizer, losses,
                                      seconds)
                if on_step:
                    on_step(step + 1, losses[-1])
        except KeyboardInterrupt:
            _write_checkpoint(checkpoint_path, plan, parameters, optimizer, losses, seconds)
            raise
    registry.save(plan.name, output)
    write_manifest(output, _manifest(model, plan, losses, seconds, command))
    checkpoint_path.unlink(missing_ok=True)
    return TrainingResult(path=output, losses=losses, seconds=seconds, resumed_at=resumed_at,
                          skipped=skipped, step_seconds=step_seconds)


def checkpoint_of(output: Path) -> Path:
    """Beside the adapter folder, not in it: saving the adapter replaces that folder."""
    return output.with_name(f".{output.name}.checkpoint.pt")


def completion_loss(module: torch.nn.Module, batch: dict[str, torch.Tensor],
                    precision: str = "float32") -> torch.Tensor:
    """Mean cross-entropy of the completion tokens; logits only where they are needed."""
    causal_lm = module.get_base_model() if hasattr(module, "get_base_model") else module
    enabled = precision == "bfloat16"
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
        hidden = causal_lm.get_decoder()(input_ids=batch["input_ids"],
                                         attention_mask=batch["attention_mask"]
                                         ).last_hidden_state
        rows, positions, labels = [], [], []
        for row, (start, end) in enumerate(batch["spans"].tolist()):
            rows += [row] * (end - start)
            positions += range(start - 1, end - 1)  # position t predicts token t + 1
            labels.append(batch["input_ids"][row, start:end])
        logits = causal_lm.get_output_embeddings()(hidden[rows, positions])
    return torch.nn.functional.cross_entropy(logits.float(), torch.cat(labels))


def _encoded(model: Model, plan: TrainingPlan) -> tuple[list[Encoded], int]:
    tokenizer = trainable_backend(model).tokenizer
    encoded = [encode(tokenizer, e["messages"], e["target"], e.get("tool_specs", []),
                      e.get("calls"), e.get("value"))
               for e in read_examples(Path(plan.data), plan.roles)]
    kept = [item for item in encoded if len(item.ids) <= plan.max_tokens]
    if not kept:
        raise ChorusError(f"No training example of {', '.join(plan.roles)} fits in "
                          f"{plan.max_tokens} tokens")
    return kept, len(encoded) - len(kept)


def _batches(count: int, plan: TrainingPlan) -> Callable[[int], list[int]]:
    """Step -> example indices: each epoch a permutation drawn from (seed, epoch)."""
    per_epoch = max(1, count // plan.batch_size)

    def batch(step: int) -> list[int]:
        epoch, index = divmod(step, per_epoch)
        order = list(range(count))
        random.Random(f"{plan.seed}:{epoch}").shuffle(order)
        return order[index * plan.batch_size:(index + 1) * plan.batch_size]

    return batch


def _read_checkpoint(path: Path, plan: TrainingPlan) -> dict | None:
    if not path.is_file():
        return None
    checkpoint = torch.load(path, weights_only=True)
    if checkpoint["plan"] != json.dumps(plan.identity(), sort_keys=True):
        saved = json.loads(checkpoint["plan"])
        changed = sorted(key for key in saved if saved[key] != plan.identity().get(key))
        raise ChorusError(
            f"{path} holds an unfinished run with other settings ({', '.join(changed)}); "
            "run with the same settings to resume it, or pass --restart to discard it")
    return checkpoint


def _write_checkpoint(path: Path, plan: TrainingPlan, parameters, optimizer, losses,
                      seconds) -> None:
    partial = path.with_name(path.name + ".partial")
    torch.save({"plan": json.dumps(plan.identity(), sort_keys=True),
                "weights": [p.detach().clone() for p in parameters],
                "optimizer": optimizer.state_dict(), "losses": losses, "seconds": seconds},
               partial)
    os.replace(partial, path)  # a kill mid-write leaves the previous checkpoint intact


def _manifest(model: Model, plan: TrainingPlan, losses, seconds, command) -> AdapterManifest:
    tail = losses[-10:]
    return AdapterManifest(
        name=plan.name, role=plan.roles[0] if len(plan.roles) == 1 else "all",
        base_model=BaseModelRecord(name=model.name,
                                   fingerprint=model.adapters.base_fingerprint,
                                   gguf_sha256=model.adapters.gguf_sha256),
        training=TrainingRecord(
            data=plan.data, data_version=data_version(Path(plan.data)), roles=plan.roles,
            from_adapter=plan.from_adapter, steps=plan.steps, batch_size=plan.batch_size,
            learning_rate=plan.learning_rate, rank=plan.rank, seed=plan.seed,
            precision=plan.precision, seconds=round(seconds, 1),
            final_loss=round(sum(tail) / len(tail), 4) if tail else None),
        command=command, created=time.strftime("%Y-%m-%d"))
