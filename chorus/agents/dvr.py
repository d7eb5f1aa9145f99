"""Divide–Verify–Refine: answer, check every constraint with code, rewrite with the feedback.

Constraints a grammar can express are compiled into one (`chorus.checks.compiling`) and every
answer and refinement is decoded under it, so they hold by construction; the checkers still
verify all of them. One round refines one failed constraint at a time (a small model fixes one
thing far more reliably than six), round-robin over the failures, with past successful
refinements of that constraint type as few-shot turns. The best response seen (most
constraints passed) is kept, so a round can never make the answer worse. Many instructions
run as one batch per round.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from chorus.agents.dividing import Division, divide
from chorus.agents.prompting import load_template, render
from chorus.checks import CheckResult, check_all, parse_constraint
from chorus.checks.base import words
from chorus.checks.compiling import CompiledConstraints, compile_constraints
from chorus.checks.conflicts import conflicting_pairs
from chorus.errors import ConstraintSpecError, RepositoryError
from chorus.memory import Refinement, RefinementRepository
from chorus.runtime import GenerationRequest, GenerationResult, Lark, Model
from chorus.runtime.guidance import Closer

log = logging.getLogger(__name__)

MAX_RESPONSE_TOKENS = 256
# Tokens a word takes, with room to spare: Qwen2.5 writes 1.3 a word in English, 1.5-1.8 in
# French, German or Spanish, more in markup (measured on the constraints benchmark's answers).
TOKENS_PER_FLOOR_WORD = 2.0
ProgressSink = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True)
class Attempt:
    response: str
    results: list[CheckResult]

    @property
    def passed(self) -> int:
        return sum(result.passed for result in self.results)


@dataclass
class DvrOutcome:
    """What a DVR run produced, and how: `to_json()` is the `chorus dvr --json` record."""

    instruction: str
    constraints: list[Any]
    conflicts: list[str]
    best: Attempt
    iterations: int = 0  # refinement rounds run
    repository_hits: int = 0  # few-shot examples retrieved
    history: list[Attempt] = field(default_factory=list)  # this process's attempts
    unrefinable: set[int] = field(default_factory=set)  # constraints in a conflict
    last_target: int = -1  # the constraint the last round refined
    latest: str = ""  # the response checked last (the best one, or a refinement that lost)
    # what answers are decoded under (its grammar None: free text)
    decoding: CompiledConstraints = field(default_factory=lambda: CompiledConstraints(None))
    first_passed: list[bool] = field(default_factory=list)  # the first answer's verdicts

    @property
    def output(self) -> Lark | None:
        return self.decoding.output

    @property
    def grammar(self) -> str | None:
        return self.decoding.grammar

    @property
    def compiled(self) -> tuple[int, ...]:
        """The constraints the grammar enforces."""
        return self.decoding.compiled

    def met_by(self) -> list[str]:
        """How each constraint was met: "construction" (compiled, and the first answer,
        decoded under the grammar, passed it), "first answer" (passed without a grammar),
        "refinement", or "not met"."""
        ways = []
        for index, result in enumerate(self.best.results):
            first = index < len(self.first_passed) and self.first_passed[index]
            if not result.passed:
                ways.append("not met")
            elif first:
                ways.append("construction" if index in self.compiled else "first answer")
            else:
                ways.append("refinement")
        return ways

    @property
    def response(self) -> str:
        return self.best.response

    @property
    def all_passed(self) -> bool:
        return all(result.passed for result in self.best.results)

    def failing(self) -> list[int]:
        """Failed constraints that refinement may still fix (conflicting ones never can)."""
        return [i for i, result in enumerate(self.best.results)
                if not result.passed and i not in self.unrefinable]

    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot for a graph's checkpointed state (history left out)."""
        return {"instruction": self.instruction,
                "constraints": [c.model_dump() for c in self.constraints],
                "conflicts": self.conflicts, "response": self.best.response,
                "results": [result.model_dump() for result in self.best.results],
                "iterations": self.iterations, "repository_hits": self.repository_hits,
                "unrefinable": sorted(self.unrefinable), "last_target": self.last_target,
                "latest": self.latest, "first_passed": self.first_passed,
                **self.decoding.to_state()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DvrOutcome:
        best = Attempt(state["response"],
                       [CheckResult.model_validate(r) for r in state["results"]])
        return cls(instruction=state["instruction"],
                   constraints=[parse_constraint(c) for c in state["constraints"]],
                   conflicts=state["conflicts"], best=best, iterations=state["iterations"],
                   repository_hits=state["repository_hits"], history=[best],
                   unrefinable=set(state["unrefinable"]), last_target=state["last_target"],
                   latest=state.get("latest", state["response"]),
                   decoding=CompiledConstraints.from_state(state),
                   first_passed=list(state.get("first_passed", ())))

    def to_json(self) -> dict[str, Any]:
        return {"response": self.response,
                "constraints": [c.model_dump() for c in self.constraints],
                "passed": [result.passed for result in self.best.results],
                "feedback": [result.feedback for result in self.best.results],
                "conflicts": self.conflicts, "iterations": self.iterations,
                "repository_hits": self.repository_hits, "met_by": self.met_by()}


def conflicting_indices(constraints: Sequence[Any]) -> tuple[list[str], set[int]]:
    """Reasons, and the constraints involved: refining either side of a conflict loops."""
    pairs = conflicting_pairs(constraints)
    return [reason for _, _, reason in pairs], {k for i, j, _ in pairs for k in (i, j)}


def answer_request(instruction: str, max_new_tokens: int = MAX_RESPONSE_TOKENS,
                   output: Lark | None = None) -> GenerationRequest:
    """The first answer: the instruction as the user's message, nothing added; decoded under
    the compiled constraints' grammar when there is one."""
    return GenerationRequest(messages=instruction, max_new_tokens=max_new_tokens,
                             stop_on_repeated_line=True, output=output)


def refine_request(instruction: str, response: str, constraint: Any, result: CheckResult,
                   examples: Sequence[Refinement] = (), *, adapter: str | None = None,
                   temperature: float = 0.0, seed: int | None = None,
                   max_new_tokens: int = MAX_RESPONSE_TOKENS,
                   output: Lark | None = None) -> GenerationRequest:
    """Past refinements of the same constraint type go first, as solved turns of the chat."""
    messages = [{"role": "system", "content": render(load_template("refiner"))}]
    for example in examples:
        messages.append({"role": "user", "content": _refine_turn(
            example.instruction, example.before, example.feedback, _requirement(example))})
        messages.append({"role": "assistant", "content": example.after})
    messages.append({"role": "user", "content": _refine_turn(
        instruction, response, result.feedback, constraint.describe())})
    return GenerationRequest(messages=messages, adapter=adapter, temperature=temperature,
                             seed=seed, max_new_tokens=max_new_tokens,
                             stop_on_repeated_line=True, output=output)


def echoes(text: str, told: str, given: str, run: int = 6) -> bool:
    """Whether `text` holds `run` words in a row of `told` (a refinement's prompt: its
    feedback, requirement and wording) that `given` (the instruction and the response
    refined) does not. Asked to use "waves" twice, Qwen 0.5B appended "problem: the word
    waves appears once; exactly 2 are required - add 1 more occurrence.", which passes the
    count and answers nothing. Runs do not cross what `told` quotes ('rain', 'cloud' and
    'storm'): an answer may well write the quoted words with the "and" between them."""
    def runs(source: str) -> set[tuple[str, ...]]:
        found = set()
        for piece in _QUOTED.split(source):
            pieces = [word.casefold() for word in words(piece)]
            found.update(tuple(pieces[i:i + run]) for i in range(len(pieces) - run + 1))
        return found

    return bool((runs(told) - runs(given)) & runs(text))


_QUOTED = re.compile(r"(?<!\w)'[^'\n]*'(?!\w)")  # as `chorus.checks.base.quoted` writes


def _requirement(example: Refinement) -> str:
    return parse_constraint({"type": example.constraint_type, **example.params}).describe()


def _usable(example: Refinement) -> bool:
    """An imported or older record may name a type or parameter this version lacks."""
    try:
        _requirement(example)
    except ConstraintSpecError as error:
        log.info("skipped refinement %s: %s", example.id, error)
        return False
    return True


def _refine_turn(instruction: str, response: str, feedback: str, requirement: str) -> str:
    return render(load_template("refine_request"), instruction=instruction,
                  response=response.strip(), feedback=feedback, requirement=requirement)


class DivideVerifyRefine:
    """`run(instruction)` or `run_batch(instructions)` -> DvrOutcome(s).

    `repository` is optional: without one, refinement runs zero-shot and nothing is stored.
    A repository that cannot be read or written is dropped with a warning; the run goes on.
    """

    def __init__(self, model: Model, repository: RefinementRepository | None = None, *,
                 max_refinements: int = 4, examples: int = 2, divider: str = "rules",
                 adapter: str | None = None, temperature: float = 0.7, seed: int = 0,
                 candidates: int = 2, batch_size: int = 8, learn: bool = True,
                 max_new_tokens: int = MAX_RESPONSE_TOKENS, construct: bool = True,
                 needs_content: bool = False):
        self.model = model
        self.repository = repository
        self.max_refinements = max_refinements
        self.examples = examples
        self.divider = divider
        self.adapter = adapter
        # Greedy decoding would answer a repeated prompt identically; sampling with a fixed
        # seed per round keeps runs reproducible and lets a retry differ.
        self.temperature = temperature
        self.seed = seed
        if candidates < 1:
            raise ValueError(f"candidates must be at least 1, not {candidates}")
        self.candidates = candidates  # samples per refinement; the checkers pick the best
        self.batch_size = batch_size
        self.learn = learn
        self.max_new_tokens = max_new_tokens  # per answer and refinement, or more: `budget`
        self.construct = construct  # decode under the compiled constraints' grammar
        self.needs_content = needs_content  # see BaseConstraint.needs_content

    def compile(self, constraints: Sequence[Any]) -> CompiledConstraints:
        """The grammar of the constraints that compile (none when `construct` is off)."""
        if not self.construct or not constraints:
            return CompiledConstraints(grammar=None, left={i: "not compiled"
                                                           for i in range(len(constraints))})
        compiled = compile_constraints(constraints, needs_content=self.needs_content)
        for index, reason in compiled.left.items():
            log.info("%s: refined, not compiled (%s)", constraints[index].type, reason)
        return compiled

    def run(self, instruction: str) -> DvrOutcome:
        return self.run_batch([instruction])[0]

    def run_batch(self, instructions: Sequence[str], on_progress: ProgressSink | None = None,
                  *, responses: Sequence[str] | None = None,
                  divisions: Sequence[Division] | None = None) -> list[DvrOutcome]:
        """`responses` and `divisions`, when given, replace the first answers and the divide
        step (a benchmark compares configurations from the same starting point)."""
        if divisions is None:
            divisions = [divide(text, self.model, strategy=self.divider)
                         for text in instructions]
        grammars = [self.compile(division.constraints) for division in divisions]
        if responses is None:
            requests = [answer_request(text, self.budget(division.constraints),
                                       compiled.output)
                        for text, division, compiled in zip(instructions, divisions, grammars,
                                                            strict=True)]
            responses = [result.text.strip() for result in self.generate(
                requests, "answer", on_progress)]
        outcomes = [self.start(division, response, compiled)
                    for division, response, compiled in zip(divisions, responses, grammars,
                                                            strict=True)]
        for round_index in range(self.max_refinements):
            if not any(outcome.failing() for outcome in outcomes):
                break
            self.refine_round(outcomes, f"refine {round_index + 1}", on_progress)
        return outcomes

    def refine_round(self, outcomes: Sequence[DvrOutcome], phase: str = "refine",
                     on_progress: ProgressSink | None = None) -> list[GenerationResult]:
        """One round for every outcome that can still improve: its next failed constraint
        refined (`candidates` samples, one batch for all), the candidate the checkers like
        best observed. The chosen generations, in the order of the improvable outcomes."""
        active = [outcome for outcome in outcomes if outcome.failing()]
        requests = [request for outcome in active for request in self.refinements(outcome)]
        results = self.generate(requests, phase, on_progress)
        chosen = []
        for number, outcome in enumerate(active):
            tried = results[number * self.candidates:(number + 1) * self.candidates]
            best = self.pick(outcome, [result.text.strip() for result in tried])
            chosen.append(next(r for r in tried if r.text.strip() == best))
            self.observe(outcome, best)
        return chosen

    def start(self, division: Division, response: str,
              compiled: CompiledConstraints | None = None) -> DvrOutcome:
        conflicts, involved = conflicting_indices(division.constraints)
        first = Attempt(response, check_all(response, division.constraints))
        return DvrOutcome(instruction=division.instruction, constraints=division.constraints,
                          conflicts=conflicts, best=first, history=[first],
                          unrefinable=involved, latest=response,
                          decoding=compiled or CompiledConstraints(None),
                          first_passed=[result.passed for result in first.results])

    def budget(self, constraints: Sequence[Any]) -> int:
        """The new tokens an answer to `constraints` may take: `max_new_tokens`, raised
        where a constraint wants more words than that holds. "At least 150 words" in French
        ran out of 256 tokens at 137 words, under a grammar that could not end before 150."""
        floor = max((constraint.word_floor() or 0 for constraint in constraints), default=0)
        needed = round(floor * TOKENS_PER_FLOOR_WORD) + Closer.RESERVE * 2 if floor else 0
        return max(self.max_new_tokens, needed)

    def target(self, outcome: DvrOutcome) -> int:
        """The next failed constraint after the one refined last, cycling through them."""
        failing = outcome.failing()
        later = [index for index in failing if index > outcome.last_target]
        return (later or failing)[0]

    def refinements(self, outcome: DvrOutcome) -> list[GenerationRequest]:
        """`candidates` samples of the request that refines the next failed constraint,
        each with a seed of its own: a row samples from its own seeded generator, so
        candidates sharing a seed were one sample written twice."""
        index = self.target(outcome)
        constraint, result = outcome.constraints[index], outcome.best.results[index]
        examples = self._retrieve(outcome.instruction, result)
        outcome.repository_hits += len(examples)
        request = refine_request(outcome.instruction, outcome.response, constraint, result,
                                 examples, adapter=self.adapter, temperature=self.temperature,
                                 max_new_tokens=self.budget(outcome.constraints),
                                 output=self._refinement_output(outcome, index))
        first = self.seed + outcome.iterations * self.candidates
        return [request.model_copy(update={"seed": first + number})
                for number in range(self.candidates)]

    def _refinement_output(self, outcome: DvrOutcome, index: int) -> Lark | None:
        """What a refinement of constraint `index` is decoded under: the answer's grammar,
        with that constraint compiled in where the answer's grammar left it out for needing
        content the model may never write (a keyword, words in capitals). Unasked, a small
        model that never writes it loops to its budget; asked by name, it mostly does, and
        is then held to it. A refinement that fails under it falls back to the answer's
        grammar, with its closings, before the refusals alone (`generate`)."""
        constraint = outcome.constraints[index]
        if not self.construct or index in outcome.compiled or not constraint.needs_content():
            return outcome.output
        compiled = compile_constraints(outcome.constraints, needs_content=self.needs_content,
                                       required={index})
        output = compiled.output
        if index not in compiled.compiled or output is None:
            return outcome.output
        return replace(output, fallback=outcome.output or output.fallback)

    def pick(self, outcome: DvrOutcome, texts: Sequence[str]) -> str:
        """The candidate passing most constraints, one that does not echo the refinement's
        prompt first; among equals, one that fixes the target."""
        index = self.target(outcome)

        def score(text: str) -> tuple[bool, int, bool]:
            results = check_all(text, outcome.constraints)
            return not self._echoes_prompt(outcome, text), sum(r.passed for r in results), \
                results[index].passed

        return max(texts, key=score)

    def observe(self, outcome: DvrOutcome, text: str) -> None:
        """Check a refined response; keep it if it passes more constraints than the best
        and does not echo the refinement's prompt."""
        index = self.target(outcome)
        before = outcome.best
        after = Attempt(text, check_all(text, outcome.constraints))
        echoed = self._echoes_prompt(outcome, text)
        outcome.history.append(after)
        outcome.latest = text
        outcome.iterations += 1
        outcome.last_target = index
        if after.passed > before.passed and not echoed:
            outcome.best = after
        # Only a clean fix teaches: one that broke another constraint is no example to copy.
        regressed = any(b.passed and not a.passed
                        for b, a in zip(before.results, after.results, strict=True))
        if after.results[index].passed and not regressed and not echoed:
            self._store(outcome, index, before, after)

    def _echoes_prompt(self, outcome: DvrOutcome, text: str) -> bool:
        """Whether `text`, a refinement of the best response so far, echoes what its prompt
        told the model (`echoes`)."""
        index = self.target(outcome)
        told = "\n".join([outcome.best.results[index].feedback,
                          outcome.constraints[index].describe(),
                          load_template("refine_request").template])
        return echoes(text, told, f"{outcome.instruction}\n{outcome.best.response}")

    def _retrieve(self, instruction: str, result: CheckResult) -> list[Refinement]:
        if self.repository is None or not self.examples:
            return []
        try:
            found = self.repository.search(f"{instruction} {result.feedback}",
                                           constraint_type=result.type, k=self.examples,
                                           touch=self.learn)
        except RepositoryError as error:
            self._drop_repository(error)
            return []
        return [example for example in found if _usable(example)]

    def _store(self, outcome: DvrOutcome, index: int, before: Attempt, after: Attempt) -> None:
        if self.repository is None or not self.learn:
            return
        constraint = outcome.constraints[index]
        try:
            self.repository.add(
                constraint_type=constraint.type, params=constraint.model_dump(exclude={"type"}),
                feedback=before.results[index].feedback, before=before.response,
                after=after.response, instruction=outcome.instruction,
                model=self.model.name, adapter=self.adapter)
        except RepositoryError as error:
            self._drop_repository(error)

    def _drop_repository(self, error: RepositoryError) -> None:
        log.warning("refinement repository disabled for this run: %s", error)
        self.repository = None

    def generate(self, requests: list[GenerationRequest], phase: str,
                 on_progress: ProgressSink | None) -> list[GenerationResult]:
        """The requests' results, `batch_size` rows at a time."""
        def done(count: int) -> None:
            on_progress(phase, count, len(requests))

        results = self.model.generate_chunked(requests, self.batch_size,
                                              on_batch=done if on_progress else None)
        # A constrained row that failed (it looped, or its budget ended before the grammar
        # was satisfied) is answered again: a greedy one sampled under the same grammar
        # (greedy decoding that looped once loops again, a sample mostly does not), a
        # sampled one under its fallback (a looser grammar), else as free text: a cut-off
        # answer is no start for refinement. Refinements are samples already, `candidates`
        # of them, so a failed one is not drawn again.
        requests = list(requests)
        while lost := [i for i, result in enumerate(results)
                       if result.error and requests[i].output is not None]:
            ways: Counter[str] = Counter()
            for i in lost:
                requests[i], way = self._retry(requests[i])
                ways[way] += 1
            log.warning("%d constrained generation(s) failed (%s); answered again: %s",
                        len(lost), results[lost[0]].error,
                        ", ".join(f"{count} {way}" for way, count in ways.items()))
            again = self.model.generate_chunked([requests[i] for i in lost], self.batch_size)
            for i, result in zip(lost, again, strict=True):
                results[i] = result
        return results

    def _retry(self, request: GenerationRequest) -> tuple[GenerationRequest, str]:
        """The request to answer a failed one with, and how it differs."""
        if request.temperature == 0 and self.temperature > 0:
            sampled = {"temperature": self.temperature, "seed": (request.seed or self.seed) + 1}
            return request.model_copy(update=sampled), "sampled under the same grammar"
        output = request.output
        fallback = output.fallback_output() if isinstance(output, Lark) else None
        way = "under a looser grammar" if fallback else "without the grammar"
        return request.model_copy(update={"output": fallback}), way
