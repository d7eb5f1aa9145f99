"""`chorus adapters`: make training data, train role adapters, list, show and evaluate them."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from chorus.cli import arguments
from chorus.display import shown
from chorus.errors import ChorusError

# Any role with examples in the data folder can be trained, also one of your own; the
# built-in ones are named here so that the parser does not import the agents.
BUILT_IN_ROLES = "planner, caller, summarizer, verifier"


def register(commands: argparse._SubParsersAction, model_options, load) -> None:
    adapters = commands.add_parser("adapters", help="role LoRA adapters: data, train, list, "
                                                    "show, eval")
    actions = adapters.add_subparsers(metavar="ACTION", required=True)

    data = actions.add_parser("data", help="generate role training data from the tool "
                                           "catalogue, split by tool")
    data.add_argument("--out", type=Path, required=True, help="folder to write")
    data.add_argument("--seed", type=arguments.seed, default=0)
    data.set_defaults(handler=make_data)

    train = actions.add_parser("train", help="train a role adapter (LoRA, CPU); an "
                                             "interrupted run resumes when run again")
    train.add_argument("--role", required=True,
                       help=f"whose examples to train on (DATA/train/ROLE.jsonl): "
                            f"{BUILT_IN_ROLES} or a role of your own; 'all' for a backbone "
                            "or a one-adapter-for-all baseline")
    train.add_argument("--data", type=Path, required=True, help="folder from `adapters data`")
    train.add_argument("--from", dest="from_adapter",
                       help="continue from this adapter (name or folder), e.g. a backbone")
    train.add_argument("--name", help="adapter name (default: the role)")
    train.add_argument("--out", type=Path,
                       help="folder to write (default: CHORUS_HOME/adapters/NAME)")
    train.add_argument("--steps", type=arguments.positive_int, default=120)
    train.add_argument("--batch-size", type=arguments.positive_int, default=4)
    train.add_argument("--learning-rate", type=arguments.positive_float, default=1e-3)
    train.add_argument("--rank", type=arguments.positive_int, default=8)
    train.add_argument("--seed", type=arguments.seed, default=0)
    train.add_argument("--precision", choices=["bfloat16", "float32"], default="bfloat16",
                       help="autocast dtype of the forward pass (weights stay float32)")
    train.add_argument("--restart", action="store_true",
                       help="discard an unfinished run's checkpoint instead of resuming it")
    model_options(train)
    train.set_defaults(handler=lambda a: train_adapter(a, load))

    listing = actions.add_parser("list", help="the adapters you trained and the shipped ones")
    listing.set_defaults(handler=list_adapters)

    show = actions.add_parser("show", help="one adapter's manifest and shape")
    show.add_argument("name", help="adapter name or folder")
    show.set_defaults(handler=show_adapter)

    evaluate = actions.add_parser("eval", help="score an adapter on its role's held-out "
                                               "examples, beside the plain base model")
    evaluate.add_argument("name", help="adapter name or folder")
    evaluate.add_argument("--data", type=Path, help="data folder (default: the one it was "
                                                    "trained on)")
    evaluate.add_argument("--role", help=f"role to score: {BUILT_IN_ROLES} or one registered "
                                         "from Python (default: the adapter's role)")
    evaluate.add_argument("--limit", type=arguments.positive_int, default=40,
                          help="examples (default 40)")
    evaluate.add_argument("--no-base", action="store_true", help="skip the base model run")
    model_options(evaluate)
    evaluate.set_defaults(handler=lambda a: evaluate_adapter(a, load))


def make_data(args) -> int:
    from chorus.training.examples import generate

    with Console(stderr=True).status("generating role examples"):
        manifest = generate(args.out, seed=args.seed)
    table = Table("split", "episodes", "planner", "caller", "summarizer", "verifier",
                  title=f"{args.out} (version {manifest['version']})")
    for split, counts in manifest["counts"].items():
        table.add_row(split, *(str(counts.get(k, 0)) for k in (
            "episodes", "planner", "caller", "summarizer", "verifier")))
    Console().print(table)
    print(f"{len(manifest['train_tools'])} training tools, {len(manifest['eval_tools'])} "
          f"held-out tools: {', '.join(manifest['eval_tools'])}")
    return 0


def train_adapter(args, load) -> int:
    from chorus.agents import role_names
    from chorus.runtime.library import locate, user_adapters
    from chorus.training.dataset import read_examples
    from chorus.training.trainer import TrainingPlan, train

    name = args.name or args.role
    output = args.out or user_adapters() / name
    plan = TrainingPlan(
        name=name, roles=role_names(trainable=True) if args.role == "all" else [args.role],
        data=str(args.data), output=str(output), steps=args.steps,
        batch_size=args.batch_size, learning_rate=args.learning_rate, rank=args.rank,
        seed=args.seed, precision=args.precision,
        from_adapter=str(locate(args.from_adapter)) if args.from_adapter else None)
    read_examples(args.data, plan.roles)  # bad data fails now, not after the model loads
    if args.dtype is None:
        args.dtype = "float32"  # LoRA weights and optimizer state must be float32
    args.backend = "transformers"  # training needs torch's gradients
    model = load(args)
    command = "chorus " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["adapters"] else None
    err = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]}"),
               TimeRemainingColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err) as progress:
        task = progress.add_task(f"training {name}", total=plan.steps, loss="-", rate="")

        def on_step(step: int, loss: float) -> None:
            speed = progress.tasks[task].speed
            progress.update(task, completed=step, loss=f"{loss:.3f}",
                            rate=f"{speed:.2f} steps/s" if speed else "")
            if not err.is_terminal and step % 10 == 0:  # a log file gets a line instead
                err.print(f"step {step}/{plan.steps} loss {loss:.3f}", highlight=False)

        try:
            result = train(model, plan, command=command, on_step=on_step,
                           restart=args.restart)
        except KeyboardInterrupt:
            err.print("[yellow]interrupted; checkpoint saved. Run the same command again "
                      "to resume.[/]")
            return 130
    if result.resumed_at:
        err.print(f"resumed at step {result.resumed_at}")
    if result.skipped:
        err.print(f"[yellow]{result.skipped} examples longer than {plan.max_tokens} tokens "
                  "were skipped[/]")
    first, last = _mean(result.losses[:10]), _mean(result.losses[-10:])
    print(f"{name}: loss {first:.3f} -> {last:.3f} over {plan.steps} steps, "
          f"{result.seconds:.0f} s of training; saved to {result.path}")
    return 0


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def list_adapters(args) -> int:
    from chorus.runtime.library import available

    items = available()
    if not items:
        print("No adapters yet. Train one with `chorus adapters train`.")
        return 0
    table = Table("name", "role", "origin", "base model", "steps", "data", "loss",
                  caption="`chorus adapters show NAME` for the details")
    for item in items:
        manifest = item.manifest
        training = manifest.training if manifest else None
        table.add_row(item.name, manifest.role if manifest else "?", item.origin,
                      manifest.base_model.name if manifest else "unknown",
                      str(training.steps) if training else "-",
                      training.data_version if training else "-",
                      f"{training.final_loss:.3f}" if training and training.final_loss
                      else "-")
    Console().print(table)
    return 0


def show_adapter(args) -> int:
    import json

    from chorus.runtime.gguf_lora import read_peft_config
    from chorus.runtime.library import locate
    from chorus.runtime.manifest import read_manifest

    path = locate(args.name)
    config = read_peft_config(path)
    weights = sum(f.stat().st_size for f in path.glob("adapter_model.*"))
    console = Console()
    console.print(f"[bold]{shown(args.name)}[/]  {shown(path)}", highlight=False)
    modules = config.get("target_modules") or []
    console.print(f"LoRA rank {config.get('r')}, alpha {config.get('lora_alpha')}, on "
                  f"{shown(', '.join(sorted(map(str, modules))))}; {weights / 1e6:.1f} MB",
                  highlight=False)
    manifest = read_manifest(path)
    if manifest is None:
        console.print("no chorus manifest: made outside chorus, base model unknown")
    else:
        console.print_json(json.dumps(manifest.model_dump(mode="json")))
    return 0


def evaluate_adapter(args, load) -> int:
    from chorus.runtime.library import locate
    from chorus.runtime.manifest import read_manifest
    from chorus.training.evaluation import evaluate_role

    path = locate(args.name)
    manifest = read_manifest(path)
    role = args.role or (manifest.role if manifest else None)
    if role in (None, "all"):
        raise ChorusError(f"Adapter '{args.name}' serves several roles; choose one with --role")
    data = args.data or (Path(manifest.training.data) if manifest and manifest.training
                         else None)
    if data is None:
        raise ChorusError("No data folder recorded for this adapter; pass --data")
    model = load(args)
    name = model.adapters.load(path, name="evaluated").name
    table = Table("model", "examples", *_metric_names(role),
                  title=f"{role} on held-out tools ({data}/eval)")
    runs = [("plain base", None)] * (not args.no_base) + [(args.name, name)]
    with Console(stderr=True).status(f"evaluating {role}"):
        for label, adapter in runs:
            scores = evaluate_role(model, role, data, adapter=adapter, limit=args.limit)
            table.add_row(label, str(scores.pop("examples")),
                          *(f"{100 * value:.1f}%" for value in scores.values()))
    Console().print(table)
    return 0


def _metric_names(role: str) -> list[str]:
    from chorus.agents import get_role

    return list(get_role(role).metrics)
