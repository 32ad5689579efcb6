"""The interfaces shared by verifiers (Monte Carlo labelling), search and PPO.

They live in the bottom layer so that every layer above can accept any implementation:
a transformers policy, a vLLM policy, a stub in a test; a PRM, the sympy verifier or a mix.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Policy(Protocol):
    def complete(self, prefixes: list[str], n: int, *, until_step_end: bool = False) -> list[list[str]]:
        """n sampled continuations for each prefix.

        A prefix is the policy prompt (see `tasks.math.prompts.policy_prompt`) followed by
        the steps so far, each ending with the step separator. With `until_step_end` each
        continuation is just the next step (without its trailing separator); otherwise it is
        the rest of the solution. Returns one list of n strings per prefix.
        """
        ...


@runtime_checkable
class StepScorer(Protocol):
    def score_steps(self, prompt: str, steps: list[str]) -> list[float]:
        """One score per step: the probability that the step is correct (or 1/0/neutral)."""
        ...


@runtime_checkable
class OutcomeScorer(Protocol):
    def score(self, prompt: str, completion: str) -> float:
        """A scalar score for a whole completion (higher is better)."""
        ...
