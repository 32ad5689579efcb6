"""Automatic step labels: symbolic checks first, Monte Carlo rollouts where nothing is checkable.

For one solution (a question, its steps, the reference answer) each step gets a label and
the source that decided it:

- ``"symbolic"``: the step makes a claim the checkers can decide. A false claim
  (`verifiers.check_step` is False, or `verifiers.check_transition` from the previous step
  is False) labels the step wrong; a step whose claims all check true is labelled right.
- ``"after_error"``: every step after the first false claim is wrong, whatever it says.
  Only a false claim does this; a step judged wrong by rollouts does not (see below).
- ``"answer"``: the final step is right iff the answer it states
  (`verifiers.extract_answer`) is `verifiers.answers_equivalent` to the reference.
- ``"rollout"``: a step with nothing checkable is estimated as Math-Shepherd does. The
  policy continues the solution from ``policy_prompt(question) + format_solution(steps[:i+1])``
  ``n_rollouts`` times; mode "hard" labels the step right iff ANY rollout (those steps and
  the continuation, judged by `verifiers.is_correct` as a whole solution is) reaches the
  reference answer, mode "soft" labels it with the FRACTION that do. Each step's estimate
  is its own.
- ``"outcome"``: without a policy, an unverifiable step takes the label of the whole
  solution's answer (right iff the final answer matches the reference and no claim is
  false). This is the cheap fallback; a policy gives better labels.
- ``"given"``: with no reference answer, an unverifiable step keeps the label the record
  already had (``given_labels``), so symbolic checks can be added to human-labelled data.

Silent errors: a step can compute correctly on the wrong number or with the wrong operation
for the story ("She buys 4 more: 12 + 4 = 16" when she bought 6); sympy says True. With
``locate_silent_errors=True``, a solution whose final answer is wrong although every claim
checks (so the error is one sympy cannot see) gets rollouts on its checked steps too, and
the rollouts decide them (source ``"rollout"``), each step by its own estimate as
Math-Shepherd estimates every step: the first step after which no rollout reaches the
reference is the estimate of where the solution went wrong, and a later step that some
rollout still saves is labelled right.

Steps after a rollout-judged wrong step are not forced wrong (a decision, as in
Math-Shepherd, whose hard labels are per-step estimates). A false claim is certain, so
everything after it is wrong (PRM800K's convention); 0 hits in ``n_rollouts`` is an
estimate that a weak policy or few rollouts can get wrong, and forcing the later steps
wrong would spread that one miss over the rest of the solution (and mode "soft" has no
"wrong" to spread). So a record may say True after a False from rollouts, and
`LabelResult.to_record` emits it as labelled; train with ``--first_wrong_only`` to ignore
the steps after a solution's first wrong one, as PRM800K-style labels would.

Mode "consensus" runs rollouts on every step up to the first false claim and keeps a step
only where the sources agree: a checked step is kept (source ``"symbolic+rollout"``) when
its symbolic verdict equals the hard rollout verdict, an unchecked step keeps its rollout
label, and a disagreeing step gets label None (source ``"disagree"``).
`LabelResult.to_record` emits such a solution truncated before its first disagreement,
so every emitted step has a label both sources support (None when nothing is left).

All rollout prefixes of a solution, or of a batch of solutions (`label_many`), go to the
policy together (`complete` calls of up to `ROLLOUT_CHUNK` prefixes each). Rollouts are not needed for steps after the first false
claim (they are wrong anyway) nor for the final step (its answer is checked directly).

    >>> result = label_steps(problem, ["3 + 4 = 8", "The answer is 8"])
    >>> result.labels, result.sources
    ([False, False], ['symbolic', 'after_error'])
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence, Union

import verifiers
from tasks.math.prompts import format_solution, policy_prompt
from tasks.math.protocols import Policy
from tasks.math.types import Label, Problem, is_true_label

MODES = ("hard", "soft", "consensus")
ROLLOUT_CHUNK = 256  # prefixes per policy call: big enough to batch, small enough to show progress
StepLabelValue = Union[bool, float, None]


@dataclass
class StepDetail:
    """How one step was judged.

    symbolic: verdict of the claim checks (None: nothing checkable), with `reason`.
    answer_ok: for the final step, whether its answer matches the reference (else None).
    rollout_hits / rollout_total: rollouts from this step that reached the reference (None
        when no rollout was run).
    """

    symbolic: bool | None = None
    reason: str = ""
    answer_ok: bool | None = None
    rollout_hits: int | None = None
    rollout_total: int | None = None

    @property
    def rollout_fraction(self) -> float | None:
        if not self.rollout_total:
            return None
        return self.rollout_hits / self.rollout_total


@dataclass
class LabelResult:
    """Labels of one solution: `labels[i]` (bool in mode "hard", float in "soft", bool or
    None in "consensus"), `sources[i]` (see the module docstring), `details[i]`.

    first_false_claim: index of the first step with a false claim, -1 if none.
    """

    labels: list[StepLabelValue]
    sources: list[str]
    details: list[StepDetail] = field(default_factory=list)
    first_false_claim: int = -1

    @property
    def n_kept(self) -> int:
        """Steps before the first unlabelled (disagreeing) step: what `to_record` emits."""
        for index, label in enumerate(self.labels):
            if label is None:
                return index
        return len(self.labels)

    def to_record(self, prompt: str, steps: Sequence[str]) -> dict | None:
        """A step-labelled record, truncated before the first step without a label.

        Returns None when not even the first step has one (consensus mode only).
        """
        kept = self.n_kept
        if kept == 0:
            return None
        return {"prompt": prompt, "completions": list(steps[:kept]), "labels": list(self.labels[:kept])}


def _question_and_reference(problem: Problem | str, reference: str | None) -> tuple[str, str | None]:
    if isinstance(problem, Problem):
        return problem.question, reference if reference is not None else problem.answer
    if isinstance(problem, str):
        return problem, reference
    raise TypeError(f"problem must be a Problem or a question string, got {type(problem).__name__}")


def _symbolic_verdicts(steps: Sequence[str]) -> list[tuple[bool | None, str]]:
    """Per step: (False if a claim or the transition from the previous step is false,
    True if something checked and nothing was false, None if nothing was checkable; reason)."""
    verdicts = []
    for index, step in enumerate(steps):
        claim = verifiers.check_step(step)
        transition = verifiers.check_transition(steps[index - 1], step) if index else None
        if claim is False:
            verdicts.append((False, "false claim in the step"))
        elif transition is False:
            verdicts.append((False, "does not follow from the previous step"))
        elif claim or transition:
            verdicts.append((True, "claims check" if claim else "follows from the previous step"))
        else:
            verdicts.append((None, "nothing checkable"))
    return verdicts


@dataclass
class _Plan:
    """One solution between the symbolic pass and the rollouts."""

    question: str
    steps: list[str]
    reference: str | None
    given_labels: list[Label] | None
    details: list[StepDetail]
    first_false_claim: int
    rollout_steps: list[int]


def _plan(problem, steps, reference, given_labels, mode: str, with_policy: bool,
          locate_silent_errors: bool = False) -> _Plan:
    question, reference = _question_and_reference(problem, reference)
    steps = list(steps)
    if not steps:
        raise ValueError("a solution needs at least one step")
    if given_labels is not None and len(given_labels) != len(steps):
        raise ValueError(f"{len(given_labels)} given labels for {len(steps)} steps")
    if reference is None and given_labels is None:
        raise ValueError("no reference answer and no given labels: unverifiable steps cannot be labelled")
    details = [StepDetail(symbolic=ok, reason=reason) for ok, reason in _symbolic_verdicts(steps)]
    first_false = next((i for i, d in enumerate(details) if d.symbolic is False), -1)
    if reference is not None:
        final = verifiers.extract_answer(steps[-1])
        details[-1].answer_ok = final is not None and verifiers.answers_equivalent(reference, final)
    # Rollouts go to the steps not yet decided: those before the first false claim (in
    # consensus mode the false step too, to compare) except the final one, whose answer is
    # checked directly; outside consensus mode only those with nothing checkable, and the
    # checked ones too when a wrong answer has no false claim to explain it.
    decided_from = len(steps) if first_false < 0 else first_false + (mode == "consensus")
    silent_error = locate_silent_errors and first_false < 0 and details[-1].answer_ok is False
    rollout_steps = []
    if with_policy and reference is not None:
        rollout_steps = [
            i for i in range(min(decided_from, len(steps) - 1))
            if mode == "consensus" or silent_error or details[i].symbolic is None
        ]
    return _Plan(question, steps, reference, given_labels, details, first_false, rollout_steps)


def _finish(plan: _Plan, mode: str) -> LabelResult:
    soft = mode == "soft"

    def value(ok: bool | float) -> bool | float:
        return float(ok) if soft else bool(ok)

    details, n = plan.details, len(plan.steps)
    outcome_ok = bool(details[-1].answer_ok) and plan.first_false_claim < 0
    consensus = mode == "consensus"
    labels: list[StepLabelValue] = []
    sources: list[str] = []
    for index, detail in enumerate(details):
        if 0 <= plan.first_false_claim < index:
            label, source = value(False), "after_error"
        elif index == n - 1 and detail.answer_ok is not None:
            # A false claim outweighs a right answer; in consensus mode the two disagree.
            if detail.symbolic is False:
                label, source = (None, "disagree") if consensus and detail.answer_ok else (value(False), "symbolic")
            else:
                label, source = value(detail.answer_ok), "answer"
        elif consensus and detail.rollout_total and detail.symbolic is not None:
            agree = detail.symbolic == (detail.rollout_hits > 0)
            label, source = (detail.symbolic, "symbolic+rollout") if agree else (None, "disagree")
        elif detail.symbolic is False:
            label, source = value(False), "symbolic"
        elif detail.rollout_total:
            label, source = (detail.rollout_fraction if soft else detail.rollout_hits > 0), "rollout"
        elif detail.symbolic is True:
            label, source = value(True), "symbolic"
        elif plan.reference is not None:
            label, source = value(outcome_ok), "outcome"
        else:
            given = plan.given_labels[index]
            label, source = (float(given) if soft else is_true_label(given)), "given"
        labels.append(label)
        sources.append(source)
    return LabelResult(labels, sources, details, plan.first_false_claim)


def label_many(
    items: Sequence[tuple[Problem | str, Sequence[str]]],
    policy: Policy | None = None,
    n_rollouts: int = 8,
    mode: str = "hard",
    *,
    references: Sequence[str | None] | None = None,
    given_labels: Sequence[list[Label] | None] | None = None,
    locate_silent_errors: bool = False,
) -> list[LabelResult]:
    """`label_steps` for many solutions, their rollouts batched into few `policy.complete` calls
    (one per `ROLLOUT_CHUNK` prefixes, with a progress bar when there is more than one).

    items: (problem or question, steps) pairs; `references` / `given_labels`, when given,
    hold one entry per item (see `label_steps`).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "consensus" and policy is None:
        raise ValueError("mode 'consensus' compares symbolic checks with rollouts: it needs a policy")
    if policy is not None and n_rollouts < 1:
        raise ValueError(f"n_rollouts must be >= 1, got {n_rollouts}")
    references = list(references) if references is not None else [None] * len(items)
    given_labels = list(given_labels) if given_labels is not None else [None] * len(items)
    if not len(references) == len(given_labels) == len(items):
        raise ValueError("references and given_labels need one entry per item")

    plans = [
        _plan(problem, steps, reference, given, mode, policy is not None, locate_silent_errors)
        for (problem, steps), reference, given in zip(items, references, given_labels)
    ]
    prefixes, owners = [], []
    for plan in plans:
        for index in plan.rollout_steps:
            prefixes.append(policy_prompt(plan.question) + format_solution(plan.steps[: index + 1]))
            owners.append((plan, index))
    if prefixes:
        from tqdm.auto import tqdm

        chunks = range(0, len(prefixes), ROLLOUT_CHUNK)
        completions = []
        for start in tqdm(chunks, desc="rollouts", unit="chunk", disable=len(chunks) == 1):
            completions += policy.complete(prefixes[start:start + ROLLOUT_CHUNK], n_rollouts)
        if len(completions) != len(prefixes) or any(len(c) != n_rollouts for c in completions):
            raise ValueError(
                f"policy.complete returned {[len(c) for c in completions]} completions for "
                f"{len(prefixes)} prefixes x {n_rollouts}; expected {n_rollouts} for each prefix"
            )
        for (plan, index), samples in zip(owners, completions):
            # Judged as evaluation judges a whole solution: a continuation that adds no answer of
            # its own (the policy stopped) reaches what the steps so far state.
            solution = format_solution(plan.steps[: index + 1])
            plan.details[index].rollout_hits = sum(
                verifiers.is_correct(plan.reference, solution + text) for text in samples
            )
            plan.details[index].rollout_total = len(samples)
    return [_finish(plan, mode) for plan in plans]


def label_steps(
    problem: Problem | str,
    steps: Sequence[str],
    policy: Policy | None = None,
    n_rollouts: int = 8,
    mode: str = "hard",
    *,
    reference: str | None = None,
    given_labels: list[Label] | None = None,
    locate_silent_errors: bool = False,
) -> LabelResult:
    """Label each step of one solution (rules in the module docstring).

    problem: a `Problem` (its `answer` is the reference) or the question text.
    steps: the solution, one string per step, the last stating the answer.
    policy: anything with `complete(prefixes, n)`; None labels unverifiable steps from the
        solution's outcome ("outcome" source).
    mode: "hard" (bool labels), "soft" (float labels in [0, 1]), "consensus".
    reference: the reference answer (overrides `problem.answer`).
    given_labels: labels the record already has, used for unverifiable steps when there is
        no reference answer.
    locate_silent_errors: let rollouts judge the checked steps of a wrong solution that has no
        false claim (see the module docstring).
    Returns a `LabelResult` with one label and one source per step.
    """
    return label_many(
        [(problem, steps)], policy, n_rollouts, mode, references=[reference], given_labels=[given_labels],
        locate_silent_errors=locate_silent_errors,
    )[0]


@dataclass
class LabelStats:
    """Counts over many labelled solutions: which source labelled how many steps, how often
    symbolic checks and rollouts agree (steps where both ran), and, where the records came
    with labels, how often the new labels agree with them (soft labels thresholded at 0.5).

    The source counts and the agreement with given labels cover the steps
    `LabelResult.to_record` writes (`emitted_steps`), not those a consensus cut leaves out;
    `steps` and the symbolic-vs-rollout agreement cover every step labelled.
    """

    solutions: int = 0
    steps: int = 0
    sources: Counter = field(default_factory=Counter)
    both_checked: int = 0
    both_agree: int = 0
    compared_to_given: int = 0
    agree_with_given: int = 0
    emitted_steps: int = 0
    dropped_solutions: int = 0

    def add(self, result: LabelResult, given_labels: Sequence[Label] | None = None) -> None:
        kept = result.n_kept
        self.solutions += 1
        self.steps += len(result.labels)
        self.sources.update(result.sources[:kept])
        # Agreement is a measure of the two labellers, not of the records: over every step both
        # judged (over the written ones only it would be 100 % in consensus mode, which cuts there).
        for detail in result.details:
            if detail.symbolic is not None and detail.rollout_total:
                self.both_checked += 1
                self.both_agree += detail.symbolic == (detail.rollout_hits > 0)
        if given_labels is not None:
            for label, given, source in zip(result.labels[:kept], given_labels, result.sources):
                if source != "given":
                    self.compared_to_given += 1
                    self.agree_with_given += is_true_label(label) == is_true_label(given)
        self.emitted_steps += kept
        self.dropped_solutions += kept == 0

    @property
    def symbolic_rollout_agreement(self) -> float | None:
        return self.both_agree / self.both_checked if self.both_checked else None

    @property
    def given_agreement(self) -> float | None:
        return self.agree_with_given / self.compared_to_given if self.compared_to_given else None

    def as_dict(self) -> dict:
        return {
            "solutions": self.solutions,
            "steps": self.steps,
            "steps_by_source": dict(self.sources),
            "symbolic_rollout_agreement": self.symbolic_rollout_agreement,
            "symbolic_rollout_compared": self.both_checked,
            "agreement_with_given_labels": self.given_agreement,
            "compared_with_given_labels": self.compared_to_given,
            "emitted_steps": self.emitted_steps,
            "dropped_solutions": self.dropped_solutions,
        }

    def __str__(self) -> str:
        lines = [f"labelled {self.steps} steps of {self.solutions} solutions"]
        for source, count in self.sources.most_common():
            lines.append(f"  {source:<17} {count:>7}  ({count / max(self.emitted_steps, 1):.1%})")
        if self.both_checked:
            lines.append(
                f"symbolic vs rollout agreement: {self.symbolic_rollout_agreement:.1%} of {self.both_checked} steps"
            )
        if self.compared_to_given:
            lines.append(
                f"agreement with the records' own labels: {self.given_agreement:.1%} of {self.compared_to_given} steps"
            )
        if self.emitted_steps != self.steps:
            lines.append(
                f"emitted {self.emitted_steps} steps (truncated at disagreements; the source counts above are of "
                f"these); {self.dropped_solutions} solutions had no agreeing first step and were not written"
            )
        return "\n".join(lines)
