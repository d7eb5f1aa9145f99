"""The DVR refinement repository: storage, de-duplication, retrieval, eviction, JSONL, failures
(corrupt file, lock), real concurrent and killed writer processes, and `chorus memory`."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from chorus.cli.main import main
from chorus.errors import RepositoryError
from chorus.memory import Refinement, RefinementRepository
from chorus.memory.refinements import ImportReport, default_repository_path, fts_query

WORDS_50 = {"relation": "at_most", "value": 50}


def _add(repository: RefinementRepository, before: str, *, after: str = "Short.",
         constraint_type: str = "word_count", params: dict | None = None,
         feedback: str = "too many words", instruction: str = "") -> int:
    return repository.add(constraint_type=constraint_type, params=params or WORDS_50,
                          feedback=feedback, before=before, after=after,
                          instruction=instruction)


def _fts_consistent(path: Path) -> None:
    """Raises if the FTS index and the table disagree (rank 1 compares with the content)."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.execute("INSERT INTO refinements_fts (refinements_fts, rank) "
                     "VALUES ('integrity-check', 1)")
    finally:
        conn.close()


@pytest.fixture
def repository(tmp_path: Path) -> RefinementRepository:
    with RefinementRepository(tmp_path / "refinements.db") as repository:
        yield repository


# -- storage -----------------------------------------------------------------------------------

def test_add_get_list(repository: RefinementRepository):
    first = repository.add(constraint_type="word_count", params=WORDS_50,
                           feedback="80 words, at most 50", before="A very long answer.",
                           after="A short one.", instruction="Answer in at most 50 words",
                           model="smollm2-135m", adapter="refiner")
    second = _add(repository, "Another long answer.")
    record = repository.get(first)
    assert isinstance(record, Refinement)
    assert (record.constraint_type, record.params, record.feedback) == (
        "word_count", WORDS_50, "80 words, at most 50")
    assert (record.before, record.after, record.instruction) == (
        "A very long answer.", "A short one.", "Answer in at most 50 words")
    assert (record.model, record.adapter, record.uses, record.last_used_at) == (
        "smollm2-135m", "refiner", 0, None)
    assert [r.id for r in repository.list()] == [second, first]  # newest first
    assert [r.id for r in repository.list(limit=1)] == [second]
    assert repository.list(constraint_type="keyword") == []
    assert len(repository) == 2


def test_get_missing_names_the_id(repository: RefinementRepository):
    with pytest.raises(RepositoryError, match="No refinement 7 in"):
        repository.get(7)


def test_duplicate_add_returns_the_existing_id(repository: RefinementRepository):
    first = _add(repository, "Same text.", params={"relation": "at_most", "value": 50})
    # Same content, params in another order and other feedback: still the same refinement.
    again = _add(repository, "Same text.", params={"value": 50, "relation": "at_most"},
                 feedback="other words")
    other_after = _add(repository, "Same text.", after="Different rewrite.")
    other_params = _add(repository, "Same text.", params={"relation": "at_most", "value": 40})
    assert again == first
    assert len({first, other_after, other_params}) == 3
    assert len(repository) == 3


def test_default_path_follows_chorus_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("CHORUS_HOME", str(tmp_path))
    assert default_repository_path() == tmp_path / "refinements.db"
    monkeypatch.delenv("CHORUS_HOME")
    assert default_repository_path() == Path.home() / ".cache" / "chorus" / "refinements.db"


# -- retrieval ---------------------------------------------------------------------------------

def test_search_ranks_the_closest_text_first_and_filters_by_type(
        repository: RefinementRepository):
    cats = _add(repository, "Cats sleep most of the day and purr when they are happy.")
    rockets = _add(repository, "Rockets burn fuel to reach orbit around the planet.")
    bread = _add(repository, "Bread rises because yeast makes gas in the dough.")
    cats_keyword = _add(repository, "Cats purr and sleep all day long.",
                        constraint_type="keyword", params={"word": "cat"})

    found = repository.search("why do cats purr when they sleep?", k=3)
    assert found[0].id in (cats, cats_keyword)
    assert {r.id for r in found[:2]} == {cats, cats_keyword}
    assert repository.search("rocket orbit", k=1)[0].id == rockets  # stemmed: rocket~rockets

    typed = repository.search("cats purr", constraint_type="word_count", k=1)
    assert [r.id for r in typed] == [cats]
    keyword = repository.search("cats purr", constraint_type="keyword", k=3)
    assert [r.id for r in keyword] == [cats_keyword]  # no other keyword record to fill with
    assert bread not in [r.id for r in repository.search("cats", k=3)]


def test_search_fills_with_most_used_records_of_the_type(repository: RefinementRepository):
    matching = _add(repository, "Penguins live in the south.")
    popular = _add(repository, "Nothing in common here.")
    plain = _add(repository, "Nor in this one.")
    _add(repository, "Penguins again, but another type.", constraint_type="keyword",
         params={"word": "ice"})
    repository.search("nothing common", constraint_type="word_count", k=1)  # popular: 1 use

    found = repository.search("penguins", constraint_type="word_count", k=3)
    assert [r.id for r in found] == [matching, popular, plain]
    assert {r.constraint_type for r in found} == {"word_count"}
    # Uses now 1, 2, 1: the most used, then the newer of the two used once.
    assert [r.id for r in repository.search("", constraint_type="word_count", k=2)] == [
        popular, plain]


@pytest.mark.parametrize("query", [
    '"', "*", "AND", "(", "-", ")", "^", "cats AND", "cats OR (", "NOT cats", '"cats',
    'cats" OR "dogs', "before:cats", "NEAR(cats dogs)", "cats*", "-cats", "{cats}", "c'ats",
    "", "   ", "!!!", "word_count", "(cats) AND -dogs* \"purr\"",
])
def test_search_accepts_any_text(repository: RefinementRepository, query: str):
    cats = _add(repository, "Cats purr.")
    found = repository.search(query, k=3)
    if "cats" in query.lower():
        assert [r.id for r in found] == [cats]
    else:
        assert all(isinstance(r, Refinement) for r in found)


def test_fts_query_quotes_every_word():
    assert fts_query('cats AND "dogs" (mice*) -birds') == '"cats" OR "and" OR "dogs" OR ' \
                                                         '"mice" OR "birds"'
    assert fts_query("*** ( - )") is None


def test_search_counts_uses(repository: RefinementRepository):
    used = _add(repository, "Whales sing long songs.")
    unused = _add(repository, "Ants carry leaves.")
    before = time.time()
    assert repository.search("whales", k=1)[0].uses == 1
    found = repository.search("whales songs", k=1)
    assert found[0].uses == 2 and found[0].last_used_at >= before
    assert repository.get(used).uses == 2
    assert repository.get(unused).uses == 0 and repository.get(unused).last_used_at is None
    assert repository.search("whales", k=0) == []


# -- eviction ----------------------------------------------------------------------------------

def test_add_evicts_the_least_used_at_the_cap(tmp_path: Path):
    path = tmp_path / "small.db"
    with RefinementRepository(path, max_records=3) as repository:
        first = _add(repository, "First text about tea.")
        second = _add(repository, "Second text about coffee.")
        third = _add(repository, "Third text about juice.")
        repository.search("tea", k=1)
        repository.search("juice", k=1)
        fourth = _add(repository, "Fourth text about water.")  # evicts the unused `second`
        assert sorted(r.id for r in repository.list()) == [first, third, fourth]
        # Least used first (fourth: 0 uses), then oldest; the record just added is spared.
        fifth = _add(repository, "Fifth text about milk.")
        assert sorted(r.id for r in repository.list()) == [first, third, fifth]
        assert [r.id for r in repository.search("coffee water", k=3)] == []
        assert second not in [r.id for r in repository.list()]
    _fts_consistent(path)


def test_prune_keeps_the_most_used_then_newest(tmp_path: Path):
    path = tmp_path / "prune.db"
    with RefinementRepository(path) as repository:
        ids = [_add(repository, f"Text number {n} about topic{n}.") for n in range(6)]
        repository.search("topic1", k=1)
        assert repository.prune(10) == 0
        assert repository.prune(2) == 4
        # topic1 (used) stays, then the newest of the unused ones.
        assert sorted(r.id for r in repository.list()) == [ids[1], ids[5]]
        assert repository.prune(0) == 2 and len(repository) == 0
    _fts_consistent(path)


# -- JSONL -------------------------------------------------------------------------------------

def test_export_import_round_trip(tmp_path: Path, repository: RefinementRepository):
    _add(repository, "Line one.\nLine two with ünïcödé and \"quotes\".", instruction="ins")
    _add(repository, "Other.", constraint_type="keyword", params={"words": ["a", "b"]})
    repository.search("other", k=1)
    exported = tmp_path / "refinements.jsonl"
    assert repository.export(exported) == 2
    assert len(exported.read_text(encoding="utf-8").splitlines()) == 2

    with RefinementRepository(tmp_path / "copy.db") as copy:
        assert copy.import_(exported) == ImportReport(added=2, duplicates=0, evicted=0)
        assert copy.import_(exported) == ImportReport(added=0, duplicates=2, evicted=0)
        fields = ("constraint_type", "params", "feedback", "before", "after", "instruction",
                  "model", "adapter", "created_at", "uses", "last_used_at")
        original = [r.model_dump(include=set(fields)) for r in repository.list()]
        assert [r.model_dump(include=set(fields)) for r in copy.list()] == original


@pytest.mark.parametrize("bad_line", [
    "not json", '{"constraint_type": "word_count"}', "[1, 2]",
    '{"constraint_type": "x", "params": "not a dict", "before": "a", "after": "b"}',
    '{"constraint_type": "x", "params": {"n": NaN}, "before": "a", "after": "b"}',
    '{"constraint_type": "x", "params": {}, "before": "a", "after": "b", "created_at": 1e400}',
    '{"constraint_type": "x", "params": {}, "before": "a", "after": "b", "uses": -1}',
])
def test_import_bad_line_names_it_and_imports_nothing(
        tmp_path: Path, repository: RefinementRepository, bad_line: str):
    good = json.dumps({"constraint_type": "word_count", "params": WORDS_50, "before": "a",
                       "after": "b"})
    source = tmp_path / "bad.jsonl"
    source.write_text(f"{good}\n\n{bad_line}\n", encoding="utf-8")
    with pytest.raises(RepositoryError, match=r"bad\.jsonl line 3"):
        repository.import_(source)
    assert len(repository) == 0


def test_an_import_over_the_cap_is_refused_unless_eviction_is_allowed(tmp_path: Path):
    """Issue 14: importing 6,000 records into 303 used to leave 5,000, none of the 303."""
    source = tmp_path / "many.jsonl"
    source.write_text("".join(
        json.dumps({"constraint_type": "word_count", "params": WORDS_50, "before": f"b{n}",
                    "after": f"a{n}"}) + "\n" for n in range(8)), encoding="utf-8")
    with RefinementRepository(tmp_path / "r.db", max_records=10) as repository:
        for n in range(5):
            _add(repository, f"Existing {n}.")
        with pytest.raises(RepositoryError, match="over the cap of 10; nothing was imported"):
            repository.import_(source)
        assert len(repository) == 5
        report = repository.import_(source, evict=True)
        assert report == ImportReport(added=8, duplicates=0, evicted=3)
        assert len(repository) == 10


# -- failures ----------------------------------------------------------------------------------

def test_corrupt_file_raises_repository_error(tmp_path: Path):
    path = tmp_path / "refinements.db"
    path.write_bytes(b"this is not a database, just some text\n" * 200)
    with pytest.raises(RepositoryError, match="not a usable refinement repository") as caught:
        RefinementRepository(path)
    assert str(path) in str(caught.value) and "move it aside" in str(caught.value)


def test_damaged_pages_raise_repository_error(tmp_path: Path):
    path = tmp_path / "refinements.db"
    with RefinementRepository(path) as repository:
        for n in range(20):
            _add(repository, f"Record {n} " + "words " * 50)
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # keep the header, wreck the schema page
    path.write_bytes(bytes(data))
    with pytest.raises(RepositoryError, match="move it aside"):
        RefinementRepository(path).list()


def test_locked_database_raises_after_the_busy_timeout(tmp_path: Path):
    path = tmp_path / "refinements.db"
    repository = RefinementRepository(path, busy_timeout=0.2)
    _add(repository, "Before the lock.")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with pytest.raises(RepositoryError, match="locked") as caught:
            _add(repository, "During the lock.")
        assert str(path) in str(caught.value)
        assert time.monotonic() - started >= 0.15  # it did wait for the other writer
        assert len(repository.list()) == 1  # WAL: reading is still possible
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    _add(repository, "After the lock.")
    assert len(repository) == 2
    repository.close()


def test_locked_new_file_raises_on_open(tmp_path: Path):
    path = tmp_path / "refinements.db"
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(RepositoryError, match="locked"):
            RefinementRepository(path, busy_timeout=0.2)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


# -- several real processes --------------------------------------------------------------------

def _writer(path: str, worker: int, count: int) -> None:
    repository = RefinementRepository(path)
    for n in range(count):
        _add(repository, f"Worker {worker} wrote record {n}.", params={"worker": worker})


def _endless_writer(path: str, done_log: str) -> None:
    repository = RefinementRepository(path)
    with open(done_log, "a", encoding="utf-8") as done:
        for n in range(1_000_000):
            new_id = _add(repository, f"Record {n} " + "padding words " * 40)
            done.write(f"{new_id}\n")  # only once add() has returned, i.e. committed
            done.flush()


def test_concurrent_writer_processes_lose_nothing(tmp_path: Path):
    path = tmp_path / "shared.db"  # created by the writers themselves, all at once
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(path), worker, 50))
               for worker in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=240)
    assert [process.exitcode for process in workers] == [0, 0, 0, 0]
    with RefinementRepository(path) as repository:
        assert len(repository) == 200
        befores = {r.before for r in repository.list(limit=1000)}
    assert befores == {f"Worker {w} wrote record {n}." for w in range(4) for n in range(50)}
    _fts_consistent(path)


def test_writer_killed_midway_loses_no_committed_record(tmp_path: Path):
    path, done_log = tmp_path / "killed.db", tmp_path / "done.txt"
    done_log.touch()
    process = multiprocessing.get_context("spawn").Process(
        target=_endless_writer, args=(str(path), str(done_log)))
    process.start()
    try:
        deadline = time.monotonic() + 240
        while done_log.read_text().count("\n") < 30 and time.monotonic() < deadline:
            assert process.is_alive(), "the writer died before it was killed"
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.join(timeout=30)
    assert process.exitcode == -signal.SIGKILL
    # Only whole lines: the child may have died while writing the last one.
    committed = [int(line) for line in done_log.read_text().split("\n")[:-1]]
    assert len(committed) >= 30
    _fts_consistent(path)
    with RefinementRepository(path) as repository:
        for refinement_id in committed:
            assert repository.get(refinement_id).id == refinement_id
        assert len(repository) >= len(committed)
        _add(repository, "Still writable after the crash.")


# -- chorus memory -----------------------------------------------------------------------------

@pytest.fixture
def filled(tmp_path: Path) -> Path:
    path = tmp_path / "cli.db"
    with RefinementRepository(path) as repository:
        _add(repository, "Cats [bold]purr[/bold] loudly all day.", after="Cats purr.")
        _add(repository, "Dogs bark at night.", constraint_type="keyword",
             params={"word": "moon"}, feedback="missing 'moon'", after="Dogs bark at the moon.")
    return path


def test_cli_list(filled: Path, capsys: pytest.CaptureFixture):
    assert main(["memory", "list", "--repository", str(filled)]) == 0
    out = capsys.readouterr().out
    assert "word_count" in out and "keyword" in out and "[bold]purr" in out
    assert main(["memory", "list", "--type", "keyword", "--repository", str(filled)]) == 0
    out = capsys.readouterr().out
    assert "keyword" in out and "word_count" not in out


def test_cli_list_without_a_repository(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                       capsys: pytest.CaptureFixture):
    monkeypatch.setenv("CHORUS_HOME", str(tmp_path / "home"))
    assert main(["memory", "list"]) == 0
    assert "No refinement repository" in capsys.readouterr().out
    assert not (tmp_path / "home" / "refinements.db").exists()  # reading creates nothing


def test_cli_search(filled: Path, capsys: pytest.CaptureFixture):
    assert main(["memory", "search", 'cats" AND (purr*', "-k", "1",
                 "--repository", str(filled)]) == 0
    out = capsys.readouterr().out
    assert "word_count" in out and "keyword" not in out
    assert main(["memory", "search", "bark", "--type", "keyword",
                 "--repository", str(filled)]) == 0
    assert "moon" in capsys.readouterr().out


def test_cli_show(filled: Path, capsys: pytest.CaptureFixture):
    assert main(["memory", "show", "2", "--repository", str(filled)]) == 0
    out = capsys.readouterr().out
    assert "Dogs bark at the moon." in out and "missing 'moon'" in out and '"word"' in out


def test_cli_show_missing_id_exits_2(filled: Path, capsys: pytest.CaptureFixture):
    assert main(["memory", "show", "99", "--repository", str(filled)]) == 2
    assert "No refinement 99" in capsys.readouterr().err


def test_cli_export_import_prune(filled: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    exported, copy = tmp_path / "out.jsonl", tmp_path / "copy.db"
    assert main(["memory", "export", str(exported), "--repository", str(filled)]) == 0
    assert "exported 2 refinements" in capsys.readouterr().out
    assert len(exported.read_text().splitlines()) == 2
    assert main(["memory", "import", str(exported), "--repository", str(copy)]) == 0
    assert "imported 2 new refinements" in capsys.readouterr().out
    assert main(["memory", "prune", "--max", "1", "--repository", str(copy)]) == 0
    assert "removed 1 refinements" in capsys.readouterr().out
    assert len(RefinementRepository(copy)) == 1


def test_cli_errors_exit_2(filled: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    assert main(["memory", "import", str(bad), "--repository", str(filled)]) == 2
    assert "line 1" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"garbage" * 1000)
    assert main(["memory", "list", "--repository", str(corrupt)]) == 2
    assert "move it aside" in capsys.readouterr().err
    missing = tmp_path / "none.db"
    assert main(["memory", "export", str(tmp_path / "x.jsonl"),
                 "--repository", str(missing)]) == 2
    assert "No refinement repository" in capsys.readouterr().err
