"""Best-of-N reranking: pick one of N sampled solutions with a PRM, an ORM, a vote or a verifier.

Methods, by name (the same names in `prm rerank`, `prm eval-search` and the tables):

| name | picks |
|---|---|
| `majority` | the most frequent final answer (answers grouped by equivalence) |
| `<scorer>-<agg>` | the highest step scores aggregated with agg = min, prod, last or mean (e.g. `prm-min`) |
| `<scorer>` | the highest outcome score `scorer.score(prompt, completion)` (e.g. `orm`) |
| `weighted-<scorer>[-<agg>]` | the answer whose candidates' scores sum highest; the SAME aggregation as above |
| `...+verifier` | any of the above after dropping candidates with a false equation |
| `oracle` | a correct candidate if there is one: pass@N, the ceiling |

Answer classes hold only pairwise equivalent answers, and no vote depends on the order the
candidates are listed in, nor on candidates outside the vote (accuracy at N from subsets of
a pool is the vote of each subset alone): among answer classes with equal votes (or equal
summed scores) the one whose answer comes first in a fixed pseudo-random order of answers
(`_tie_rank`, blind to their values) wins; within the winning class a majority vote
returns a candidate of its most frequent answer, a weighted vote its best-scored candidate.
Correctness is checked per candidate, not per class. Among equal scores (`<scorer>` methods)
the candidate listed first wins. If the verifier filter would drop every candidate, all are
kept (a choice is still made; it is then the unfiltered method's choice).

Everything a method needs is computed once per problem into a `CandidatePool` (answers,
answer classes, scores, verifier verdicts, correctness), so accuracy at N = 1, 2, 4, ... is
estimated from one pool of M samples by averaging over many random subsets
(`accuracy_curve`), as "Let's Verify Step by Step" does.

    from search.rerank import best_of_n
    index = best_of_n(prompt, solutions, prm.load("runs/prm"), aggregation="min", verifier_filter=True)
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from itertools import combinations
from typing import Any

import numpy as np

import verifiers
from search.scorers import AGGREGATIONS, VerifierScorer, aggregate, score_solutions
from tasks.math.steps import join_steps, split_steps

VERIFIER_SUFFIX = "+verifier"
WEIGHTED_PREFIX = "weighted-"


# ---------------------------------------------------------------------------------------
# Answers: extraction and grouping into equivalence classes


_INTEGER = r"(?:\d{1,3}(?:,\d{3})+|\d+)"
_DECIMAL = re.compile(rf"^([+-]?)({_INTEGER})?(?:\.(\d+))?$")
_SLASH_FRACTION = re.compile(r"^([+-]?)\s*(\d+)\s*/\s*(\d+)$")
_LATEX_FRACTION = re.compile(r"^([+-]?)\s*\\[dt]?frac\s*(?:\{\s*(\d+)\s*\}|(\d))\s*(?:\{\s*(\d+)\s*\}|(\d))$")


def numeric_key(answer: str) -> Fraction | None:
    """The exact value of a plainly written number, or None when the text is anything else.

    Handles integers (with thousands commas), decimals, `a/b`, `\\frac{a}{b}` (also `\\dfrac`,
    `\\tfrac`, `\\frac12`), a sign, and `$` around the answer: "0.5", "1/2" and "\\frac{1}{2}"
    all give Fraction(1, 2). Anything else (units, percent, expressions) returns None and is
    grouped by `verifiers.answers_equivalent` instead.
    """
    text = answer.strip().strip("$").strip()
    if text.endswith("."):
        text = text[:-1]
    text = text.replace("\\!", "").replace("{,}", ",")
    match = _DECIMAL.match(text)
    if match and (match.group(2) or match.group(3)):
        sign, whole, fraction = match.groups()
        value = Fraction(int((whole or "0").replace(",", "")))
        if fraction:
            value += Fraction(int(fraction), 10 ** len(fraction))
        return -value if sign == "-" else value
    match = _SLASH_FRACTION.match(text)
    if match:
        sign, numerator, denominator = match.groups()
    else:
        match = _LATEX_FRACTION.match(text)
        if not match:
            return None
        sign = match.group(1)
        numerator = match.group(2) or match.group(3)
        denominator = match.group(4) or match.group(5)
    if int(denominator) == 0:
        return None
    value = Fraction(int(numerator), int(denominator))
    return -value if sign == "-" else value


@lru_cache(maxsize=1 << 16)
def answer_key(answer: str) -> tuple[str, Any]:
    """What identifies an answer without any equivalence check, and orders answers canonically.

    ("number", value) for a plain number (`numeric_key`: "0.5", "1/2" and "\\frac{1}{2}" share
    one), else ("text", the text with whitespace runs collapsed). Keys of both kinds compare
    with each other (numbers first), so any set of answers has one sorted order. Cached: votes
    over thousands of random subsets look the same answers up again and again.
    """
    value = numeric_key(answer)
    return ("number", value) if value is not None else ("text", " ".join(answer.split()))


def group_answers(answers: Sequence[str | None]) -> list[int]:
    """Equivalence-class id per answer (-1 for None or blank); every class's answers are
    pairwise equivalent, and the classes depend only on which answers occur how often,
    never on the order they are listed in.

    Answers with the same `answer_key` are one answer. The distinct answers are taken most
    frequent first, then by key; each joins the first class whose every member it is
    equivalent to (`verifiers.answers_equivalent`, called with the key that sorts first as
    the first argument), or opens a new class. So class ids run 0, 1, ... in that canonical
    order, and an answer equivalent to two answers that are not equivalent to each other
    ("50%" to "0.5" and to "50") joins one of them instead of chaining them together. Two
    different plain numbers are compared only when one is written with a decimal point: a
    rounded decimal can equal another value ("0.3333" and "1/3"), two exact forms cannot.
    """
    keys = [None if answer is None or not answer.strip() else answer_key(answer) for answer in answers]
    counts = Counter(key for key in keys if key is not None)
    # The text compared for a key: the smallest of its spellings, whatever the order.
    text_of: dict[tuple[str, Any], str] = {}
    for answer, key in zip(answers, keys):
        if key is not None:
            text_of[key] = min(text_of.get(key, answer), answer)
    members: list[list[tuple[str, Any]]] = []
    class_of: dict[tuple[str, Any], int] = {}
    for key in sorted(counts, key=lambda k: (-counts[k], k)):
        class_of[key] = next(
            (class_id for class_id, keys_in in enumerate(members)
             if all(_keys_equivalent(other, key, text_of) for other in keys_in)),
            len(members),
        )
        if class_of[key] == len(members):
            members.append([])
        members[class_of[key]].append(key)
    return [-1 if key is None else class_of[key] for key in keys]


def _keys_equivalent(first: tuple[str, Any], second: tuple[str, Any], text_of: dict[tuple[str, Any], str]) -> bool:
    """`first` sorts before `second` in the canonical order; equal keys never get here."""
    if first[0] == second[0] == "number" and "." not in text_of[first] + text_of[second]:
        return False
    return verifiers.answers_equivalent(text_of[first], text_of[second])


def extract_answers(texts: Sequence[str]) -> list[str | None]:
    """`verifiers.extract_answer` on each solution text."""
    return [verifiers.extract_answer(text) for text in texts]


# ---------------------------------------------------------------------------------------
# Votes and argmax over a subset of candidates


def _vote(classes: Sequence[int], answers: Sequence[str | None], indices: Sequence[int],
          weights: Sequence[float] | None) -> int | None:
    """The chosen candidate index: the class with most votes (or largest weight sum).

    No tie depends on the order of `indices` or on candidates outside them: equal totals go
    to the class whose answer among `indices` has the lowest `_tie_rank`; within the class a
    majority vote returns a candidate of its most
    frequent answer here, a weighted vote its best-scored candidate, equal ones then by
    smaller `answer_key`, and only candidates with the same key by listing order.
    """
    votes: dict[int, list[float]] = {}
    for i in indices:
        if classes[i] >= 0:
            votes.setdefault(classes[i], []).append(1.0 if weights is None else weights[i])
    if not votes:
        return None
    # fsum is exactly rounded: a plain running sum could differ in its last bit by order.
    totals = {class_id: math.fsum(values) for class_id, values in votes.items()}
    most = max(totals.values())
    tied = [class_id for class_id, total in totals.items() if total == most]
    winner = tied[0]
    if len(tied) > 1:
        ranks: dict[int, bytes] = {}
        for i in indices:
            if classes[i] in tied:
                rank = _tie_rank(answer_key(answers[i]))
                ranks[classes[i]] = min(ranks.get(classes[i], rank), rank)
        winner = min(tied, key=lambda class_id: ranks[class_id])
    members = [i for i in indices if classes[i] == winner]
    keys = {i: answer_key(answers[i]) for i in members}
    if weights is None:
        counts = Counter(keys.values())
        return min(members, key=lambda i: (-counts[keys[i]], keys[i]))  # min: first listed of equals
    return min(members, key=lambda i: (-weights[i], keys[i]))


@lru_cache(maxsize=1 << 16)
def _tie_rank(key: tuple[str, Any]) -> bytes:
    """A fixed pseudo-random rank of an answer for breaking tied votes: blind to the answer's
    value (a rule such as "the smaller number" could favour right or wrong answers), to the
    listing order and to the candidates outside the vote."""
    return hashlib.blake2b(repr(key).encode(), digest_size=8).digest()


def _argmax(values: Sequence[float], indices: Sequence[int]) -> int | None:
    if not indices:
        return None
    best = indices[0]
    for i in indices[1:]:
        if values[i] > values[best]:
            best = i
    return best


def majority_vote(answers: Sequence[str | None]) -> int | None:
    """Index of a candidate holding the most frequent answer (None if no answer at all).

    `majority_vote(["1/2", "3", "0.5"]) == 0` ("1/2" and "0.5" are one answer).
    """
    return _vote(group_answers(answers), answers, list(range(len(answers))), None)


def weighted_majority(answers: Sequence[str | None], weights: Sequence[float]) -> int | None:
    """Index of the best-weighted candidate of the answer whose weights sum highest.

    Weights are the candidates' scores, aggregated as configured (`aggregate(step_scores, how)`);
    they must be non-negative (probabilities), as a sum of votes.
    """
    if len(weights) != len(answers):
        raise ValueError(f"{len(weights)} weights for {len(answers)} answers")
    _check_weights(weights)
    return _vote(group_answers(answers), answers, list(range(len(answers))), list(weights))


def _check_weights(weights: Sequence[float]) -> None:
    for w in weights:
        if not (w >= 0.0 and math.isfinite(w)):
            raise ValueError(
                f"weighted majority needs non-negative finite scores (probabilities), got {w}; "
                "use a scorer whose scores are probabilities"
            )


def oracle_pass(answers: Sequence[str | None], reference: str) -> bool:
    """pass@N: True if any candidate's answer is equivalent to the reference."""
    return any(a is not None and verifiers.answers_equivalent(reference, a) for a in answers)


# ---------------------------------------------------------------------------------------
# Methods


@dataclass(frozen=True)
class Method:
    """A reranking method: `kind` is "majority", "best", "weighted" or "oracle".

    `scorer` names an entry of the scorers dict; `aggregation` (min|prod|last|mean) reduces
    its step scores, None means its outcome score `score(prompt, completion)`.
    """

    kind: str
    scorer: str | None = None
    aggregation: str | None = None
    verifier_filter: bool = False

    @property
    def name(self) -> str:
        if self.kind in ("majority", "oracle"):
            base = self.kind
        else:
            base = self.scorer + (f"-{self.aggregation}" if self.aggregation else "")
            if self.kind == "weighted":
                base = WEIGHTED_PREFIX + base
        return base + (VERIFIER_SUFFIX if self.verifier_filter else "")

    @classmethod
    def parse(cls, text: str) -> "Method":
        """`Method.parse("weighted-prm-min+verifier")` -> weighted vote, scorer "prm", min, filtered."""
        name = text.strip()
        verifier_filter = name.endswith(VERIFIER_SUFFIX)
        if verifier_filter:
            name = name[: -len(VERIFIER_SUFFIX)]
        if name in ("majority", "oracle"):
            if name == "oracle" and verifier_filter:
                raise ValueError("oracle takes no verifier filter: it is the ceiling")
            return cls(name, verifier_filter=verifier_filter)
        kind = "best"
        if name.startswith(WEIGHTED_PREFIX):
            kind, name = "weighted", name[len(WEIGHTED_PREFIX):]
        scorer, _, last = name.rpartition("-")
        if scorer and last in AGGREGATIONS:
            aggregation = last
        else:
            scorer, aggregation = name, None
        if not scorer:
            raise ValueError(f"cannot read method {text!r}: expected e.g. majority, prm-min, orm, weighted-prm-min")
        return cls(kind, scorer, aggregation, verifier_filter)


def parse_methods(text: str | Sequence[str]) -> list[Method]:
    """Methods from "majority,prm-min,orm" or a list of names."""
    names = text.split(",") if isinstance(text, str) else list(text)
    # A method named twice is one method: results are keyed by name.
    return list(dict.fromkeys(Method.parse(name) for name in names if name.strip()))


def default_methods(scorer_names: Sequence[str], *, has_reference: bool = True) -> list[Method]:
    """The standard grid: votes, every PRM aggregation, weighted votes, verifier-filtered, oracle.

    A scorer whose name starts with "orm" is used through its outcome score; every other
    scorer through its step scores.
    """
    names = ["majority", "majority+verifier"]
    for scorer in scorer_names:
        if scorer.startswith("orm"):
            names += [scorer, f"weighted-{scorer}", f"{scorer}+verifier"]
        else:
            names += [f"{scorer}-{how}" for how in AGGREGATIONS]
            names += [f"weighted-{scorer}-min", f"weighted-{scorer}-last", f"{scorer}-min+verifier"]
    if has_reference:
        names.append("oracle")
    return parse_methods(names)


# ---------------------------------------------------------------------------------------
# Candidate pools


@dataclass
class CandidatePool:
    """M candidate solutions to one problem and everything reranking reads, computed once.

    Lists are indexed by candidate. `step_scores[name]`: `[M][steps_i]`; `outcome_scores[name]`:
    `[M]`; `passes_verifier`: no false equation (None when no method filters); `correct`: the
    answer matches `reference` (None without a reference); `tokens`: generated tokens per
    candidate when known.
    """

    prompt: str
    texts: list[str]
    steps: list[list[str]]
    answers: list[str | None]
    classes: list[int]
    reference: str | None = None
    correct: list[bool] | None = None
    passes_verifier: list[bool] | None = None
    step_scores: dict[str, list[list[float]]] = field(default_factory=dict)
    outcome_scores: dict[str, list[float]] = field(default_factory=dict)
    tokens: list[int] | None = None
    _values: dict[tuple[str, str | None], list[float]] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.texts)

    def values(self, scorer: str, aggregation: str | None) -> list[float]:
        """One score per candidate for `scorer` reduced by `aggregation` (None: outcome score).

        Computed once per pool (subsampled evaluation asks for it thousands of times).
        """
        key = (scorer, aggregation)
        if key not in self._values:
            if aggregation is None:
                if scorer not in self.outcome_scores:
                    raise KeyError(f"no outcome scores for scorer {scorer!r} in this pool")
                self._values[key] = self.outcome_scores[scorer]
            else:
                if scorer not in self.step_scores:
                    raise KeyError(f"no step scores for scorer {scorer!r} in this pool")
                self._values[key] = [aggregate(scores, aggregation) for scores in self.step_scores[scorer]]
        return self._values[key]


def build_pool(
    prompt: str,
    solutions: Sequence[str | Sequence[str]],
    *,
    scorers: dict[str, Any] | None = None,
    methods: Sequence[Method] = (),
    reference: str | None = None,
    verifier: VerifierScorer | None = None,
    tokens: Sequence[int] | None = None,
    step_style: str = "auto",
) -> CandidatePool:
    """Score M solutions (texts, or lists of steps) once for all `methods`.

    Only what the methods need is computed: step scores for `<scorer>-<agg>` methods (one
    `score_best_of_n` call per scorer), outcome scores for `<scorer>` methods, verifier
    verdicts for `+verifier` methods, correctness when a reference is given.
    """
    scorers = scorers or {}
    texts, steps = [], []
    for solution in solutions:
        if isinstance(solution, str):
            texts.append(solution)
            steps.append(split_steps(solution, style=step_style))
        else:
            steps.append(list(solution))
            texts.append(join_steps(list(solution)))
    answers = extract_answers(texts)
    pool = CandidatePool(prompt, texts, steps, answers, group_answers(answers), reference=reference)
    if tokens is not None:
        if len(tokens) != len(texts):
            raise ValueError(f"{len(tokens)} token counts for {len(texts)} solutions")
        pool.tokens = [int(t) for t in tokens]
    for method in methods:
        if method.scorer is None:
            continue
        if method.scorer not in scorers:
            raise KeyError(f"method {method.name!r} needs a scorer named {method.scorer!r}; have {sorted(scorers)}")
        scorer = scorers[method.scorer]
        if hasattr(scorer, "score_solutions") and method.scorer not in pool.step_scores:
            # A reward model gives step and outcome scores of the pool's steps in one pass.
            pool.step_scores[method.scorer], pool.outcome_scores[method.scorer] = _reward_model_scores(
                scorer, prompt, texts, steps)
        if method.aggregation is not None and method.scorer not in pool.step_scores:
            if not hasattr(scorer, "score_steps"):
                raise TypeError(f"method {method.name!r}: scorer {method.scorer!r} has no score_steps")
            pool.step_scores[method.scorer] = score_solutions(scorer, prompt, steps)
        if method.aggregation is None and method.scorer not in pool.outcome_scores:
            if hasattr(scorer, "score"):
                pool.outcome_scores[method.scorer] = [
                    float(scorer.score(prompt, text)) if text.strip() else 0.0 for text in texts
                ]
            else:
                raise TypeError(f"method {method.name!r}: scorer {method.scorer!r} has no score(prompt, completion)")
    if any(m.verifier_filter for m in methods):
        verifier = verifier or VerifierScorer()
        pool.passes_verifier = [verifier.passes(s) for s in steps]
    if reference is not None:
        pool.correct = correctness(pool.answers, reference)
    return pool


def _reward_model_scores(scorer: Any, prompt: str, texts: Sequence[str], steps: Sequence[Sequence[str]]
                         ) -> tuple[list[list[float]], list[float]]:
    """(step scores, outcome scores) of a reward model (`score_solutions`) on the pool's own
    steps, the steps its `<scorer>-<agg>` methods read, not the text split again at the model's
    separator; as `score`, a model without an outcome head gives its aggregated step scores. An
    empty candidate gets no step score and outcome 0."""
    non_empty = [i for i, (text, s) in enumerate(zip(texts, steps)) if s and text.strip()]
    step_scores: list[list[float]] = [[] for _ in texts]
    outcomes = [0.0] * len(texts)
    if non_empty:
        batch, batch_outcomes = scorer.score_solutions(prompt, [list(steps[i]) for i in non_empty])
        for i, own_steps, outcome in zip(non_empty, batch, batch_outcomes):
            step_scores[i] = [float(score) for score in own_steps]
            outcomes[i] = float(outcome if outcome is not None else scorer.aggregate(own_steps))
    return step_scores, outcomes


def correctness(answers: Sequence[str | None], reference: str) -> list[bool]:
    """Per candidate: is its answer equivalent to the reference? One check per distinct text.

    Never one check per answer class: a class member can match the reference while another
    does not (with reference "50", "50%" does and "0.5" does not).
    """
    verdicts: dict[str, bool] = {}
    for answer in answers:
        if answer is not None and answer.strip() and answer not in verdicts:
            verdicts[answer] = verifiers.answers_equivalent(reference, answer)
    return [verdicts.get(answer, False) for answer in answers]


def choose(method: Method | str, pool: CandidatePool, indices: Sequence[int] | None = None) -> int | None:
    """The candidate `method` picks among `indices` (default: all); None if it cannot pick.

    Majority and weighted votes return None when no candidate has an answer.
    """
    if isinstance(method, str):
        method = Method.parse(method)
    indices = list(range(len(pool))) if indices is None else list(indices)
    if method.kind == "oracle":
        if pool.correct is None:
            raise ValueError("oracle needs a reference answer")
        return next((i for i in indices if pool.correct[i]), indices[0] if indices else None)
    if method.verifier_filter:
        if pool.passes_verifier is None:
            raise ValueError(f"pool was built without verifier verdicts; include {method.name!r} in build_pool")
        kept = [i for i in indices if pool.passes_verifier[i]]
        indices = kept or indices
    if method.kind == "majority":
        return _vote(pool.classes, pool.answers, indices, None)
    values = pool.values(method.scorer, method.aggregation)
    if method.kind == "weighted":
        _check_weights([values[i] for i in indices])
        return _vote(pool.classes, pool.answers, indices, values)
    return _argmax(values, indices)


def best_of_n(
    prompt: str,
    solutions: Sequence[str | Sequence[str]],
    scorer: Any,
    *,
    aggregation: str | None = "min",
    verifier_filter: bool = False,
    weighted: bool = False,
) -> int:
    """Index of the best of N solutions (texts or step lists) under `scorer`.

    A step scorer is aggregated with `aggregation`; pass `aggregation=None` to use the
    scorer's outcome score (an ORM). `verifier_filter=True` first drops candidates with a
    false equation; `weighted=True` votes over answers with the aggregated scores.
    """
    if not hasattr(scorer, "score_steps"):
        aggregation = None
    method = Method("weighted" if weighted else "best", "scorer", aggregation, verifier_filter)
    pool = build_pool(prompt, solutions, scorers={"scorer": scorer}, methods=[method])
    choice = choose(method, pool)
    # A weighted vote with no extractable answer anywhere falls back to the plain argmax.
    return choice if choice is not None else _argmax(pool.values("scorer", aggregation), list(range(len(pool))))


# ---------------------------------------------------------------------------------------
# Accuracy at N from a pool of M >= N samples


@dataclass
class CurvePoint:
    """Accuracy of one method at one N: mean and sample std over seeds, per-seed values,
    and the mean generated tokens per problem at that N (None when unknown)."""

    method: str
    n: int
    accuracy_mean: float
    accuracy_std: float
    accuracies: list[float]
    tokens_mean: float | None = None


def subsets(m: int, n: int, count: int, rng: np.random.Generator) -> list[list[int]]:
    """Index subsets of size n from range(m), each sorted.

    When there are at most max(count, m) subsets in all, every one is used (exact: N = 1
    gives all M singletons, so best-of-1 accuracy is exactly pass@1); otherwise `count`
    random subsets drawn without replacement within each.
    """
    if not 1 <= n <= m:
        raise ValueError(f"cannot take {n} of {m} samples")
    if math.comb(m, n) <= max(count, m):
        return [list(c) for c in combinations(range(m), n)]
    return [sorted(rng.choice(m, size=n, replace=False).tolist()) for _ in range(count)]


def accuracy_curve(
    pools: Sequence[CandidatePool],
    methods: Sequence[Method | str],
    ns: Sequence[int],
    *,
    seeds: Sequence[int] = (0,),
    n_subsets: int = 8,
) -> list[CurvePoint]:
    """Accuracy at each N for each method, averaged over random subsets of every pool.

    For each seed, each problem and each N the same subsets serve every method (paired
    comparison). Accuracy for a seed = mean over problems of the fraction of subsets where
    the chosen candidate is correct. Pools need references; N larger than a pool is refused.
    """
    # Hits are summed per method name: a method listed twice would be counted twice.
    methods = list(dict.fromkeys(Method.parse(m) if isinstance(m, str) else m for m in methods))
    if not pools:
        raise ValueError("no problems to evaluate")
    for index, pool in enumerate(pools):
        if pool.correct is None:
            raise ValueError(f"problem {index} has no reference answer; accuracy needs one")
    smallest = min(len(pool) for pool in pools)
    too_big = [n for n in ns if n > smallest]
    if too_big:
        raise ValueError(f"N = {too_big} exceeds the smallest pool ({smallest} candidates)")
    points = []
    for n in ns:
        per_method: dict[str, list[float]] = {m.name: [] for m in methods}
        token_totals: list[float] = []
        for seed in seeds:
            hits = {m.name: 0.0 for m in methods}
            for problem_index, pool in enumerate(pools):
                rng = np.random.default_rng([seed, n, problem_index])
                draws = subsets(len(pool), n, n_subsets, rng)
                for method in methods:
                    right = 0
                    for subset in draws:
                        choice = choose(method, pool, subset)
                        right += choice is not None and pool.correct[choice]
                    hits[method.name] += right / len(draws)
                if pool.tokens is not None:
                    token_totals.append(float(np.mean([sum(pool.tokens[i] for i in s) for s in draws])))
            for name in hits:
                per_method[name].append(hits[name] / len(pools))
        tokens_known = all(pool.tokens is not None for pool in pools)
        for method in methods:
            values = per_method[method.name]
            points.append(
                CurvePoint(
                    method=method.name,
                    n=n,
                    accuracy_mean=float(np.mean(values)),
                    accuracy_std=float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                    accuracies=values,
                    tokens_mean=float(np.mean(token_totals)) if tokens_known else None,
                )
            )
    return points


def powers_of_two(limit: int) -> list[int]:
    """1, 2, 4, ... up to `limit`, plus `limit` itself when it is not a power of two."""
    ns = [1 << k for k in range(int(math.log2(limit)) + 1)] if limit >= 1 else []
    return ns + ([limit] if ns and ns[-1] != limit else [])


def curve_markdown(points: Sequence[CurvePoint], *, label: str = "N") -> str:
    """A markdown table: one row per method, one column per N, "mean ± std" accuracy."""
    ns = sorted({p.n for p in points})
    methods = list(dict.fromkeys(p.method for p in points))
    cell = {(p.method, p.n): p for p in points}
    seeds = max((len(p.accuracies) for p in points), default=0)
    lines = [
        f"| method | " + " | ".join(f"{label}={n}" for n in ns) + " |",
        "|---|" + "---:|" * len(ns),
    ]
    for method in methods:
        row = []
        for n in ns:
            p = cell.get((method, n))
            row.append("" if p is None else f"{p.accuracy_mean:.3f} ± {p.accuracy_std:.3f}")
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    lines.append("")
    lines.append(f"Accuracy, mean ± sample std over {seeds} seed(s).")
    return "\n".join(lines) + "\n"
