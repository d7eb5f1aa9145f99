"""`chorus memory`: look into, search, move and prune the DVR refinement repository."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from chorus.cli import arguments
from chorus.display import clip
from chorus.errors import ChorusError

if TYPE_CHECKING:
    from chorus.memory.refinements import Refinement, RefinementRepository

# The repository's module is imported where a command uses it: every `chorus` command
# registers these subcommands, and the others never need it.


def register(commands: argparse._SubParsersAction) -> None:
    """Add `chorus memory ACTION ...` to the top-level subcommands."""
    memory = commands.add_parser("memory", help="the refinement repository of DVR runs")
    actions = memory.add_subparsers(metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="stored refinements, newest first")
    listing.add_argument("--type", help="only this constraint type (e.g. word_count)")
    listing.add_argument("--limit", type=arguments.positive_int, default=50)
    listing.set_defaults(handler=list_refinements)

    search = actions.add_parser("search", help="the refinements closest to a text")
    search.add_argument("query", help="any text: its words are matched, operators are not")
    search.add_argument("--type", help="only this constraint type (e.g. word_count)")
    search.add_argument("-k", type=arguments.positive_int, default=3, help="how many (default 3)")
    search.set_defaults(handler=search_refinements)

    show = actions.add_parser("show", help="one refinement in full")
    show.add_argument("id", type=int)
    show.set_defaults(handler=show_refinement)

    export = actions.add_parser("export", help="write every refinement to a JSONL file")
    export.add_argument("file", type=Path)
    export.set_defaults(handler=export_refinements)

    imports = actions.add_parser("import", help="add the refinements of a JSONL file")
    imports.add_argument("file", type=Path)
    imports.add_argument("--evict", action="store_true",
                         help="let the least used refinements go if the import goes over the "
                              "cap (without it, such an import is refused)")
    imports.set_defaults(handler=import_refinements)

    prune = actions.add_parser("prune", help="evict the least used, then oldest, refinements")
    prune.add_argument("--max", type=int, help="records to keep (default: the cap, 5000)")
    prune.set_defaults(handler=prune_refinements)

    for action in (listing, search, show, export, imports, prune):
        action.add_argument("--repository", type=Path,
                            help="repository file (default: CHORUS_HOME/refinements.db)")


def list_refinements(args) -> int:
    repository = _existing(args)
    if repository is None:
        return 0
    _print_table(repository.list(constraint_type=args.type, limit=args.limit))
    return 0


def search_refinements(args) -> int:
    repository = _existing(args)
    if repository is None:
        return 0
    # Looking is not using: only agents' searches count towards `uses`.
    _print_table(repository.search(args.query, constraint_type=args.type, k=args.k,
                                   touch=False))
    return 0


def show_refinement(args) -> int:
    repository = _existing(args, required=True)
    console = Console()
    for field, value in repository.get(args.id).model_dump().items():
        console.print(Text.assemble((f"{field}: ", "bold"), _shown(field, value)))
    return 0


def export_refinements(args) -> int:
    repository = _existing(args, required=True)
    count = repository.export(args.file)
    print(f"exported {count} refinements from {repository.path} to {args.file}")
    return 0


def import_refinements(args) -> int:
    if not args.file.is_file():
        raise ChorusError(f"No file {args.file} to import")
    from chorus.memory.refinements import RefinementRepository

    repository = RefinementRepository(_path(args))
    report = repository.import_(args.file, evict=args.evict)
    evicted = f", evicted {report.evicted} least used" if report.evicted else ""
    print(f"imported {report.added} new refinements into {repository.path} "
          f"({report.duplicates} already there{evicted}; {len(repository)} in all)")
    return 0


def prune_refinements(args) -> int:
    if args.max is not None and args.max < 0:
        raise ChorusError(f"--max must be 0 or more, not {args.max}")
    repository = _existing(args)
    if repository is None:
        return 0
    removed = repository.prune(args.max)
    print(f"removed {removed} refinements from {repository.path} ({len(repository)} left)")
    return 0


def _path(args) -> Path:
    from chorus.memory.refinements import default_repository_path

    return args.repository or default_repository_path()


def _existing(args, *, required: bool = False) -> RefinementRepository | None:
    """The repository if its file exists; reading commands never create one."""
    from chorus.memory.refinements import RefinementRepository

    path = _path(args)
    if path.is_file():
        return RefinementRepository(path)
    if required:
        raise ChorusError(f"No refinement repository at {path} yet")
    print(f"No refinement repository at {path} yet: DVR runs create it.")
    return None


def _print_table(records: list[Refinement]) -> None:
    table = Table()
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("params")
    table.add_column("uses", justify="right")
    table.add_column("before → after")
    for record in records:
        # Text, not str: user text such as "[b]" must not be read as rich markup.
        table.add_row(str(record.id), Text(record.constraint_type),
                      Text(json.dumps(record.params, ensure_ascii=False)), str(record.uses),
                      Text(f"{clip(record.before, 40)} → {clip(record.after, 40)}"))
    Console().print(table)


def _shown(field: str, value: object) -> str:
    if field == "params":
        return json.dumps(value, ensure_ascii=False)
    if field in ("created_at", "last_used_at") and value is not None:
        return datetime.fromtimestamp(value).isoformat(sep=" ", timespec="seconds")
    return str(value)
