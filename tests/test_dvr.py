"""Divide–Verify–Refine: the loop's bookkeeping, its repository, its graph and its CLI.

The tiny random model writes nonsense, so these tests check what DVR guarantees whatever the
model writes: the best answer is kept, loops are bounded, conflicts are not refined, a
repository that fails is dropped without failing the run, and successes are stored.
"""

import json
import sqlite3

import pytest
from test_graphs_tiny import _chorus

from chorus.agents.dividing import Division, divide
from chorus.agents.dvr import DivideVerifyRefine, DvrOutcome, echoes
from chorus.agents.prompting import load_template
from chorus.checks import parse_constraint
from chorus.errors import RepositoryError
from chorus.graphs import GraphRunner, builtin_graph, load_spec
from chorus.memory import RefinementRepository

SHORT = 16  # the tiny model's answers are noise: short noise keeps the tests fast


def _short_dvr_graph(folder):
    """The built-in dvr graph with small budgets for the writer and the refiner."""
    text = builtin_graph("dvr").read_text()
    text = text.replace("{role: writer}", f"{{role: writer, max_new_tokens: {SHORT}}}")
    text = text.replace("{role: refiner,", f"{{role: refiner, max_new_tokens: {SHORT},")
    path = folder / "dvr.yaml"
    path.write_text(text)
    return path


LOWER_PS = [parse_constraint({"type": "lowercase"}),
            parse_constraint({"type": "postscript", "marker": "P.S."})]


def _outcome(loop: DivideVerifyRefine, response: str, constraints=LOWER_PS) -> DvrOutcome:
    return loop.start(Division("Write a note in lowercase, with a P.S.", constraints), response)


def test_a_worse_refinement_never_replaces_the_best_answer(tiny):
    loop = DivideVerifyRefine(tiny)
    outcome = _outcome(loop, "a note in lowercase.")  # lowercase passes, P.S. fails
    loop.observe(outcome, "A Note In Capitals.")  # fails both
    assert outcome.response == "a note in lowercase." and outcome.iterations == 1
    loop.observe(outcome, "a note in lowercase.\np.s. see you")  # marker is case-insensitive
    assert outcome.all_passed and outcome.response.endswith("see you")
    assert [a.passed for a in outcome.history] == [1, 0, 2]


def test_a_refinement_is_held_to_the_content_it_asks_for(tiny):
    """The answer's grammar leaves a keyword out (a model never asked for it may never
    write it); the refinement that asks for it by name is decoded under it as well."""
    from chorus.runtime.guidance import accepts

    loop = DivideVerifyRefine(tiny)
    constraints = [LOWER_PS[0], parse_constraint({"type": "include_keywords",
                                                  "keywords": ["tea"]})]
    compiled = loop.compile(constraints)
    outcome = loop.start(Division("Write a note in lowercase about tea.", constraints),
                         "a note.", compiled)
    assert outcome.compiled == (0,) and outcome.failing() == [1]
    [request, _] = loop.refinements(outcome)
    assert accepts(request.output.source, "a note about tea.")
    assert not accepts(request.output.source, "a note.")
    assert not accepts(request.output.source, "A note about tea.")  # lowercase still holds
    assert accepts(outcome.output.source, "a note.")  # the answer's grammar is unchanged
    # Where the refinement fails under it, the answer's own grammar comes next.
    assert request.output.fallback_output() == outcome.output
    free = DivideVerifyRefine(tiny, construct=False)
    outcome = free.start(Division("Write a note about tea.", constraints[1:]), "a note.")
    assert free.refinements(outcome)[0].output is None


def test_the_candidates_of_a_refinement_are_different_samples(tiny):
    loop = DivideVerifyRefine(tiny, candidates=3, max_new_tokens=SHORT)
    outcome = _outcome(loop, "a note in lowercase.")
    requests = loop.refinements(outcome)
    assert len({request.seed for request in requests}) == 3
    texts = [result.text for result in loop.generate(requests, "refine", None)]
    assert len(set(texts)) == 3  # one seed each: not one sample written three times
    loop.observe(outcome, "a note in lowercase.")
    assert not {r.seed for r in requests} & {r.seed for r in loop.refinements(outcome)}


def test_an_answer_that_needs_more_words_than_the_budget_holds_gets_a_larger_budget(tiny):
    loop = DivideVerifyRefine(tiny, max_new_tokens=SHORT)
    many = [parse_constraint({"type": "word_count", "relation": "at_least", "value": 300})]
    assert loop.budget(LOWER_PS) == SHORT
    assert loop.budget([*LOWER_PS, *many]) >= 2 * 300  # Qwen: 1.3-1.8 tokens a word
    few = [parse_constraint({"type": "word_count", "relation": "at_most", "value": 300})]
    assert loop.budget(few) == SHORT  # a ceiling asks for no room
    outcome = loop.start(Division("Write 300 words on tea.", many), "tea.")
    assert {r.max_new_tokens for r in loop.refinements(outcome)} == {loop.budget(many)}


def test_a_successful_refinement_is_stored_and_then_retrieved(tiny, tmp_path):
    repository = RefinementRepository(tmp_path / "refinements.db")
    loop = DivideVerifyRefine(tiny, repository)
    outcome = _outcome(loop, "a note.")
    loop.observe(outcome, "a note.\nP.S. bring cake")  # fixed, but broke lowercase
    assert len(repository) == 0  # no example to copy
    loop.observe(outcome, "a note.\np.s. bring cake")  # markers are case-insensitive
    [stored] = repository.list()
    assert (stored.constraint_type, stored.params) == ("postscript", {"marker": "P.S."})
    assert (stored.before, stored.after) == ("a note.", "a note.\np.s. bring cake")
    assert "P.S." in stored.feedback and stored.model == tiny.name

    again = _outcome(loop, "another note.")
    [request] = loop.refinements(again)[:1]
    turns = [m["content"] for m in request.messages]
    assert again.repository_hits == 1
    assert turns[2] == "a note.\np.s. bring cake"  # the example's answer, as a solved turn
    assert "another note." in turns[3]


def test_a_refinement_that_echoes_its_prompt_is_neither_kept_nor_stored(tiny, tmp_path):
    """A small model asked for a second "waves" appended the feedback itself, which passes
    the count and answers nothing; a candidate that does not echo is picked first."""
    repository = RefinementRepository(tmp_path / "refinements.db")
    loop = DivideVerifyRefine(tiny, repository)
    waves = [parse_constraint({"type": "keyword_frequency", "keyword": "waves",
                               "relation": "exactly", "value": 2})]
    outcome = loop.start(Division("write a poem with 'waves' twice", waves), "waves dance.")
    [feedback] = [result.feedback for result in outcome.best.results]
    echo = f"waves dance.\n\nproblem: {feedback.lower()}"
    assert outcome.constraints[0].check(echo).passed
    assert loop.pick(outcome, [echo, "waves dance, waves sleep."]) == "waves dance, waves sleep."
    assert loop.pick(outcome, [echo, "waves dance at night."]) == "waves dance at night."
    loop.observe(outcome, echo)
    assert outcome.response == "waves dance." and len(repository) == 0
    loop.observe(outcome, "waves dance, waves sleep.")
    assert outcome.all_passed and len(repository) == 1


def test_an_echo_is_what_the_prompt_told_and_neither_the_instruction_nor_the_answer_held():
    told = ("Paragraph 2 starts with 'This'; it must start with the word 'Before' (it now "
            "reads 'This is a great example of how technolo…'). Use the word 'Before' first.")
    answer = "Intro.\n\nThis is a great example of how technology helps."
    assert not echoes("Intro.\n\nBefore this, a great example of how technology helps.",
                      told, f"Write two paragraphs. {answer}")  # the excerpt was the answer's
    assert echoes("Intro. It must start with the word 'Before' now.", told, answer)
    # What the prompt quotes is not run into its wording: the keywords may come with "and".
    keywords = parse_constraint({"type": "include_keywords",
                                 "keywords": ["rain", "cloud", "storm", "morning dew"]})
    assert not echoes("Grey rain, cloud and storm and morning dew in the night sky.",
                      keywords.describe(), "Write about the weather; use rain, cloud, storm.")
    assert echoes("Rewrite the response so that it meets the requirement.",
                  load_template("refine_request").template, "Write a poem.")
    assert not echoes("In my opinion the answer is yes, since it rains.",
                      "Start your response with 'In my opinion the answer is yes'.",
                      "Say 'In my opinion the answer is yes' first.")


def test_refinement_rounds_are_bounded_and_batched(tiny):
    loop = DivideVerifyRefine(tiny, max_refinements=2, candidates=2, max_new_tokens=SHORT)
    instructions = ["Write a note in all lowercase with a P.S.",
                    "Describe the sea in exactly 2 sentences and include the word 'salt'."]
    outcomes = loop.run_batch(instructions)
    for outcome in outcomes:
        assert len(outcome.constraints) == 2
        assert outcome.iterations <= 2 and len(outcome.history) == outcome.iterations + 1
        assert outcome.best.passed == max(a.passed for a in outcome.history)
        record = outcome.to_json()
        assert set(record) >= {"response", "constraints", "passed", "iterations",
                               "repository_hits"}
        assert len(record["passed"]) == len(record["constraints"])


def test_no_constraint_means_a_plain_answer(tiny):
    [outcome] = DivideVerifyRefine(tiny, max_new_tokens=SHORT).run_batch(
        ["Tell me about the moon."])
    assert outcome.constraints == [] and outcome.iterations == 0 and outcome.all_passed


def test_contradictory_constraints_are_reported_not_refined(tiny):
    loop = DivideVerifyRefine(tiny, max_refinements=3, max_new_tokens=SHORT)
    outcome = loop.run("Write a poem in all lowercase letters, using only capital letters.")
    assert {c.type for c in outcome.constraints} == {"lowercase", "uppercase"}
    assert outcome.conflicts and "lowercase" in outcome.conflicts[0]
    assert outcome.iterations == 0  # nothing to refine that could ever pass


def test_a_locked_repository_is_dropped_and_the_run_goes_on(tiny, tmp_path, caplog):
    path = tmp_path / "refinements.db"
    repository = RefinementRepository(path, busy_timeout=0.2)
    repository.add(constraint_type="include_keywords", params={"keywords": ["tea"]},
                   feedback="f", before="b", after="b tea")
    holder = sqlite3.connect(path)
    holder.execute("BEGIN EXCLUSIVE")  # another process mid-write, for longer than we wait
    try:
        loop = DivideVerifyRefine(tiny, repository, max_refinements=1, max_new_tokens=SHORT)
        # A language has no grammar, and the tiny model writes no French: refined, so the
        # repository is asked for examples
        outcome = loop.run("Write a note. Answer in French.")
    finally:
        holder.rollback()
    assert outcome.iterations == 1 and loop.repository is None
    assert "refinement repository disabled" in caplog.text


def test_divide_strategies_and_bad_strategy(tiny):
    assert divide("Use no commas.").constraints == [parse_constraint({"type": "no_commas"})]
    hybrid = divide("Use no commas.", tiny, strategy="hybrid").constraints
    assert hybrid[0] == parse_constraint({"type": "no_commas"})  # the rules come first
    with pytest.raises(Exception, match="Unknown divide strategy"):
        divide("x", strategy="guess")


def test_dvr_graph_runs_checks_and_bounded_refinement(tiny, tmp_path):
    repository = RefinementRepository(tmp_path / "refinements.db")
    runner = GraphRunner(load_spec(_short_dvr_graph(tmp_path)), tiny, store=tmp_path,
                         refinements=repository)
    nodes = []
    result = runner.run("Write a note in all lowercase with a P.S.",
                        on_update=lambda node, update: nodes.append(node))
    assert nodes[:3] == ["divide", "respond", "verify"]
    assert result.state["visits"].get("refine", 0) <= 4
    outcome = DvrOutcome.from_state(result.state["dvr"])
    assert [c.type for c in outcome.constraints] == ["lowercase", "postscript"]
    assert result.answer == outcome.response
    assert result.state["verdict"]["pass"] == outcome.all_passed


def test_chorus_dvr_json_and_a_corrupt_repository(tiny_model_dir, tmp_path):
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database" * 100)
    done = _chorus("dvr", "Write a note with a P.S.", "--json", "--model", str(tiny_model_dir),
                   "--graph", str(_short_dvr_graph(tmp_path)),
                   "--dtype", "float32", "--store", str(tmp_path), "--repository", str(broken))
    assert done.returncode == 0, done.stderr
    assert "refining without examples" in done.stderr and "Traceback" not in done.stderr
    record = json.loads(done.stdout)
    assert record["constraints"] == [{"type": "postscript", "marker": "P.S."}]
    assert len(record["passed"]) == 1 and record["iterations"] <= 4


def test_answers_are_decoded_under_the_compiled_constraints(tiny):
    """Even noise meets "lowercase" and "no commas" when it is decoded under their grammar;
    the record says so per constraint, and `construct=False` decodes free text."""
    instruction = "Write a note in all lowercase and use no commas."
    [outcome] = DivideVerifyRefine(tiny, max_refinements=0, max_new_tokens=SHORT).run_batch(
        [instruction])
    assert [c.type for c in outcome.constraints] == ["lowercase", "no_commas"]
    assert outcome.compiled == (0, 1) and outcome.grammar
    assert outcome.met_by() == ["construction", "construction"]
    assert outcome.response.lower() == outcome.response and "," not in outcome.response
    record = outcome.to_json()
    assert record["met_by"] == ["construction", "construction"]
    assert DvrOutcome.from_state(outcome.to_state()).met_by() == outcome.met_by()
    [free] = DivideVerifyRefine(tiny, max_refinements=0, max_new_tokens=SHORT,
                                construct=False).run_batch([instruction])
    assert free.grammar is None and "construction" not in free.met_by()


def test_a_constrained_answer_that_cannot_finish_is_sampled_again_then_answered_freely(
        tiny, caplog):
    # Five sentences at least, in 2 tokens: the grammar cannot be satisfied in time, sampled
    # or not, so the answer is written as free text in the end.
    loop = DivideVerifyRefine(tiny, max_refinements=0, max_new_tokens=2)
    with caplog.at_level("WARNING"):
        [outcome] = loop.run_batch(["Answer in at least 5 sentences."])
    assert outcome.compiled == (0,)
    sampled = caplog.text.index("answered again: 1 sampled under the same grammar")
    assert sampled < caplog.text.index("answered again: 1 without the grammar")
    assert outcome.met_by() == ["not met"]
    caplog.clear()
    greedy = DivideVerifyRefine(tiny, max_refinements=0, max_new_tokens=2, temperature=0)
    with caplog.at_level("WARNING"):
        greedy.run_batch(["Answer in at least 5 sentences."])
    assert "sampled" not in caplog.text and "1 without the grammar" in caplog.text


def test_the_dvr_graph_decodes_its_first_answer_under_the_grammar(tiny, tmp_path):
    runner = GraphRunner(load_spec(_short_dvr_graph(tmp_path)), tiny, store=tmp_path)
    result = runner.run("Reply in lowercase letters only, with no commas.")
    outcome = DvrOutcome.from_state(result.state["dvr"])
    assert outcome.compiled == (0, 1)
    assert outcome.met_by() == ["construction", "construction"]


def test_chorus_generate_with_constraints(tiny_model_dir, tmp_path):
    constraints = [{"type": "lowercase"}, {"type": "no_commas"},
                   {"type": "response_language", "language": "en"}]
    done = _chorus("generate", "Say hello.", "--model", str(tiny_model_dir), "--dtype",
                   "float32", "--max-new-tokens", "12", "--json",
                   "--constraints", json.dumps({"constraints": constraints}))
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert [c["compiled"] for c in record["constraints"]] == [True, True, False]
    assert record["constraints"][0]["passed"] and record["constraints"][1]["passed"]
    assert record["text"].lower() == record["text"] and "," not in record["text"]
    file = tmp_path / "constraints.json"
    file.write_text(json.dumps([{"type": "lowercase"}, {"type": "uppercase"}]))
    conflict = _chorus("generate", "Say hello.", "--model", str(tiny_model_dir), "--dtype",
                       "float32", "--max-new-tokens", "4", "--constraints", str(file))
    assert conflict.returncode == 0 and "in conflict" in conflict.stderr
    for bad, message in (("[{\"type\": \"lowercas\"}]", "did you mean 'lowercase'"),
                         ("[{", "not valid JSON"), ("{\"a\": 1}", "must be a JSON list")):
        done = _chorus("generate", "Say hello.", "--model", str(tiny_model_dir),
                       "--constraints", bad)
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_repository_errors_name_the_file(tmp_path):
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"x" * 4096)
    with pytest.raises(RepositoryError, match="broken.db"):
        RefinementRepository(broken)


@pytest.mark.integration
def test_dvr_on_the_embedded_model_never_ends_worse_than_it_started(smol):
    loop = DivideVerifyRefine(smol, max_refinements=2)
    outcome = loop.run("Write about the sea. Add a postscript starting with P.S.")
    assert [c.type for c in outcome.constraints] == ["postscript"]
    assert outcome.response.strip() and outcome.iterations <= 2
    assert outcome.best.passed >= outcome.history[0].passed
    assert outcome.to_json()["passed"] == [outcome.all_passed]


@pytest.mark.parametrize("model_name", ["qwen", "smol"])
def test_a_closing_leads_the_embedded_model_into_what_its_grammar_needs(model_name, request):
    """Without the closing, Qwen2.5-Coder-0.5B wrote 3 bullets for "exactly 4"; under the
    grammar alone a model that never writes the fourth runs to its budget. Both backends
    (llama.cpp for Qwen, transformers for SmolLM2) write the closing where the model ends."""
    from chorus.agents.dvr import answer_request
    from chorus.checks import check_all
    from chorus.checks.compiling import compile_constraints

    model = request.getfixturevalue(model_name)
    constraints = [parse_constraint({"type": "bullet_count", "value": 4})]
    output = compile_constraints(constraints).output
    assert output.closings == ("\n* ",)
    result = model.complete(answer_request(
        "List reasons to learn Python. Use exactly 4 bullet points.", 256, output))
    assert result.finish_reason == "stop"
    assert all(r.passed for r in check_all(result.text, constraints)), result.text
