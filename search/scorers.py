"""Interchangeable scorers for reranking, beam search and PPO rewards.

Anything with `score_steps(prompt, steps) -> list[float]` is a step scorer and anything
with `score(prompt, completion) -> float` an outcome scorer (`tasks.math.protocols`). A
PRM loaded with `prm.load` is both. This module adds:

- `VerifierScorer`: the sympy step checker as a scorer (1.0 true, 0.0 false, `neutral`
  when a step has nothing checkable) and the "drop candidates with a false equation" test;
- `WeightedScorer`: a linear mix of scorers, e.g. a PRM and the verifier (Llama 2 combines
  two reward models the same way);
- `OutcomeFromSteps`: a step scorer seen as an outcome scorer through an aggregation.

    prm_scorer = prm.load("runs/prm")
    mixed = WeightedScorer([(prm_scorer, 0.8), (VerifierScorer(), 0.2)])
    mixed.score_steps("What is 3 + 4?", ["3 + 4 = 7", "The answer is 7"])  # one mixed score per step
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import verifiers
from prm.scoring import AGGREGATIONS, aggregate
from tasks.math.protocols import OutcomeScorer, StepScorer
from tasks.math.steps import split_steps

__all__ = [
    "AGGREGATIONS",
    "OutcomeFromSteps",
    "OutcomeScorer",
    "StepScorer",
    "VerifierScorer",
    "WeightedScorer",
    "aggregate",
    "is_incremental",
    "score_solutions",
]


def score_solutions(scorer: StepScorer, prompt: str, solutions: Sequence[Sequence[str]]) -> list[list[float]]:
    """Step scores for N solutions to one prompt: `[N][steps_i]`.

    Uses the scorer's `score_best_of_n` when it has one (a PRM encodes the prompt once and
    shares its KV cache); otherwise one `score_steps` call per solution. Empty solutions
    get an empty score list.
    """
    solutions = [list(steps) for steps in solutions]
    non_empty = [i for i, steps in enumerate(solutions) if steps]
    scores: list[list[float]] = [[] for _ in solutions]
    if not non_empty:
        return scores
    if hasattr(scorer, "score_best_of_n"):
        batch = scorer.score_best_of_n(prompt, [solutions[i] for i in non_empty])
    else:
        batch = [scorer.score_steps(prompt, solutions[i]) for i in non_empty]
    for i, step_scores in zip(non_empty, batch):
        if len(step_scores) != len(solutions[i]):
            raise ValueError(f"scorer returned {len(step_scores)} scores for {len(solutions[i])} steps")
        scores[i] = [float(s) for s in step_scores]
    return scores


class VerifierScorer:
    """The sympy step checker as a step scorer.

    Each step scores 1.0 if every equation in it is true, 0.0 if any is false and `neutral`
    if nothing in it can be checked (`verifiers.check_step`). With `check_transitions`,
    algebra between consecutive steps counts too (`verifiers.check_transition`): a step is
    false if either check says false, true if one says true and none false.

    No reference answer is used: this scores reasoning, so it works at inference time.
    """

    def __init__(self, neutral: float = 0.5, *, check_transitions: bool = False):
        if not 0.0 <= neutral <= 1.0:
            raise ValueError(f"neutral must be in [0, 1], got {neutral}")
        self.neutral = neutral
        self.check_transitions = check_transitions

    def verdicts(self, steps: Sequence[str]) -> list[bool | None]:
        """True / False / None (unverifiable) per step."""
        return [self._verdict(steps[index - 1] if index else None, step) for index, step in enumerate(steps)]

    def _verdict(self, previous: str | None, step: str) -> bool | None:
        verdict = verifiers.check_step(step)
        if self.check_transitions and previous is not None:
            transition = verifiers.check_transition(previous, step)
            if verdict is False or transition is False:
                verdict = False
            elif verdict is None:
                verdict = transition
        return verdict

    def _score(self, verdict: bool | None) -> float:
        return self.neutral if verdict is None else float(verdict)

    def score_steps(self, prompt: str, steps: list[str]) -> list[float]:
        """`[steps]` scores: 1.0 / 0.0 / `neutral`."""
        return [self._score(v) for v in self.verdicts(steps)]

    def start(self, prompt: str) -> str | None:
        """Incremental scoring (as `prm.load`'s scorers): a path's state is its last step."""
        return None

    def extend(self, states: Sequence[str | None], new_steps: Sequence[str]) -> tuple[list[float], list[str]]:
        """The score of `new_steps[i]` after the path whose state is `states[i]`, and the new states."""
        return [self._score(self._verdict(state, step)) for state, step in zip(states, new_steps)], list(new_steps)

    def passes(self, steps: Sequence[str]) -> bool:
        """False when some step states a false equation; the best-of-N verifier filter."""
        return all(v is not False for v in self.verdicts(steps))


class WeightedScorer:
    """A linear combination `sum_i w_i * scorer_i` of step scorers (and outcome scorers).

    `score_steps` mixes per-step scores, so every component must be a step scorer; `score`
    mixes outcome scores, so every component needs `score` (wrap a step scorer in
    `OutcomeFromSteps`). Weights are used as given: weights summing to 1 over [0, 1]
    scorers keep the mix in [0, 1], which weighted majority voting expects.
    """

    def __init__(self, components: Sequence[tuple[Any, float]]):
        if not components:
            raise ValueError("WeightedScorer needs at least one (scorer, weight) pair")
        self.components = [(scorer, float(weight)) for scorer, weight in components]

    @property
    def forward_tokens(self) -> int:
        """Tokens the components ran through their models (search counters read it)."""
        return sum(getattr(scorer, "forward_tokens", 0) for scorer, _ in self.components)

    def start(self, prompt: str) -> _MixState:
        """Incremental scoring for beam search: each component that has `start` / `extend` (a PRM
        from `prm.load`, `VerifierScorer`) keeps its own state, so only the new step is scored;
        any other component re-scores the path with `score_steps`."""
        return _MixState(prompt, (), tuple(scorer.start(prompt) if is_incremental(scorer) else None
                                           for scorer, _ in self.components))

    def extend(self, states: Sequence[_MixState], new_steps: Sequence[str]) -> tuple[list[float], list[_MixState]]:
        """The mixed score of `new_steps[i]` after the path of `states[i]`, and the new states."""
        if len(states) != len(new_steps):
            raise ValueError(f"{len(states)} states for {len(new_steps)} new steps")
        mixed, parts = [0.0] * len(states), []
        for index, (scorer, weight) in enumerate(self.components):
            if is_incremental(scorer):
                scores, part = scorer.extend([state.parts[index] for state in states], list(new_steps))
            else:
                scores = [scorer.score_steps(state.prompt, [*state.steps, step])[-1]
                          for state, step in zip(states, new_steps)]
                part = [None] * len(states)
            parts.append(part)
            for row, score in enumerate(scores):
                mixed[row] += weight * float(score)
        return mixed, [_MixState(state.prompt, (*state.steps, step), tuple(part[row] for part in parts))
                       for row, (state, step) in enumerate(zip(states, new_steps))]

    def score_steps(self, prompt: str, steps: list[str]) -> list[float]:
        return self.score_best_of_n(prompt, [steps])[0]

    def score_best_of_n(self, prompt: str, solutions: list[list[str]]) -> list[list[float]]:
        """`[N][steps_i]` mixed scores; each component scores all N solutions in one call."""
        return self._mix(solutions, lambda scorer: score_solutions(scorer, prompt, solutions))

    def score_steps_batch(self, prompts: list[str], steps_lists: list[list[str]]) -> list[list[float]]:
        """Mixed scores of many (prompt, steps) pairs; each component scores them in one batch
        where it can (a PRM's `score_steps_batch`)."""
        def batch(scorer):
            if hasattr(scorer, "score_steps_batch"):
                return scorer.score_steps_batch(prompts, steps_lists)
            return [scorer.score_steps(prompt, steps) for prompt, steps in zip(prompts, steps_lists)]

        return self._mix(steps_lists, batch)

    def _mix(self, steps_lists: list[list[str]], score_all) -> list[list[float]]:
        """sum_i w_i * score_all(scorer_i), per step; score_all(scorer) -> [N][steps_i]."""
        mixed = [[0.0] * len(steps) for steps in steps_lists]
        for scorer, weight in self.components:
            if not hasattr(scorer, "score_steps"):
                raise TypeError(f"{type(scorer).__name__} has no score_steps; it cannot be mixed per step")
            for row, scores in zip(mixed, score_all(scorer)):
                for j, value in enumerate(scores):
                    row[j] += weight * value
        return mixed

    def score(self, prompt: str, completion: str) -> float:
        total = 0.0
        for scorer, weight in self.components:
            if not hasattr(scorer, "score"):
                raise TypeError(
                    f"{type(scorer).__name__} has no score(prompt, completion); wrap it in OutcomeFromSteps"
                )
            total += weight * float(scorer.score(prompt, completion))
        return total


@dataclass(frozen=True)
class _MixState:
    """A path of `WeightedScorer.start` / `extend`: its steps and each component's own state."""

    prompt: str
    steps: tuple[str, ...]
    parts: tuple


def is_incremental(scorer) -> bool:
    """The scorer has `start(prompt)` / `extend(states, new_steps)`: beam search scores only new steps."""
    return callable(getattr(scorer, "start", None)) and callable(getattr(scorer, "extend", None))


class OutcomeFromSteps:
    """A step scorer as an outcome scorer: split the completion into steps, aggregate.

    `score(prompt, completion) = aggregate(step_scorer.score_steps(prompt, split_steps(completion)), how)`.
    """

    def __init__(self, step_scorer: StepScorer, aggregation: str = "min", *, step_style: str = "auto"):
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {aggregation!r}; choose one of {', '.join(AGGREGATIONS)}")
        self.step_scorer = step_scorer
        self.aggregation = aggregation
        self.step_style = step_style

    def score_steps(self, prompt: str, steps: list[str]) -> list[float]:
        return self.step_scorer.score_steps(prompt, steps)

    def score(self, prompt: str, completion: str) -> float:
        steps = split_steps(completion, style=self.step_style)
        return aggregate(self.step_scorer.score_steps(prompt, steps) if steps else [], self.aggregation)


def load_scorers(prm_path: str | None, orm_path: str | None, *, device: str | None = None,
                 trust_remote_code: bool = False) -> dict[str, Any]:
    """{"prm": ..., "orm": ...} for the paths given, loaded with `prm.load`."""
    import prm
    from generation.hub import resolve_model

    scorers = {}
    for name, path in (("prm", prm_path), ("orm", orm_path)):
        if path:
            scorers[name] = prm.load(resolve_model(path), device=device, trust_remote_code=trust_remote_code)
    return scorers
