"""Step-level search with a PRM: beam search, diverse verifier tree search (DVTS), best-of-N.

One round of beam search::

    the active beams ──policy.expand (their KV caches reused)──▶ width next steps, shared
        evenly (beam_width each until some beams finish, then more for those left)
    every new step ──scorer.extend (the PRM's KV cache of the prefix reused)──▶ its score
    optional lookahead: each new step rolled `lookahead` more steps greedily; those steps
        are scored too and the candidate is ranked by the score of the longer path
    the best candidates by aggregated score (last | min | prod | mean) survive; a candidate
        that states the answer (or hits EOS) is finished and kept aside

`beam_search` keeps the best candidates of the whole round, `width // beam_width` paths in
all with those finished before; `dvts` splits the same budget into `width // beam_width`
independent subtrees, each keeping only its best child. Both sample `width` steps every
round until no beam is active or `max_steps` is reached: the samples of beams (subtrees)
that finished go to those still live, as search-and-learn refills the width with copies of
the active beams, so budgets compare at equal width. `SearchCounters.policy_generated_tokens`
is what the policy reports it sampled.

The scorer is either incremental (`start(prompt)` / `extend(states, new_steps)`: the PRM
from `prm.load`, whose new step's tokens alone are encoded, the sympy `VerifierScorer` and a
`WeightedScorer` of such scorers) or anything with `score_steps(prompt, steps)`, which
re-scores the whole prefix every round; `SearchCounters` shows the difference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import accumulate

from prm.scoring import AGGREGATIONS, aggregate
from search.scorers import is_incremental
from tasks.math.prompts import ANSWER_PREFIX, STEP_SEPARATOR, policy_prompt
from tasks.math.steps import split_steps


@dataclass
class BeamConfig:
    """Budget and selection of a step-level search.

    width: steps sampled per round (N); beam_width: children per beam (M) while no beam
    has finished; width // beam_width beams (beam search) or subtrees (DVTS) are kept.
    """

    width: int = 8
    beam_width: int = 4
    max_steps: int = 10
    temperature: float = 0.7
    aggregation: str = "last"
    lookahead: int = 0
    seed: int = 0

    def __post_init__(self):
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if self.beam_width < 1 or self.width < self.beam_width:
            raise ValueError(f"need 1 <= beam_width <= width, got beam_width={self.beam_width}, width={self.width}")
        if self.max_steps < 1 or self.lookahead < 0:
            raise ValueError("max_steps must be >= 1 and lookahead >= 0")

    @property
    def n_beams(self) -> int:
        return self.width // self.beam_width


@dataclass
class SearchCounters:
    """Cost of one search.

    policy_forward_tokens / policy_generated_tokens: tokens the policy ran through its model
    / sampled (lookahead included); policy_padding_tokens: padding it also ran.
    prm_forward_tokens: tokens the scorer ran through its model (0 for a scorer without a
    model or counter); prm_new_steps: steps that needed a score; prm_scored_steps: steps
    handed to the scorer (more than prm_new_steps when whole prefixes are re-scored).
    """

    policy_forward_tokens: int = 0
    policy_generated_tokens: int = 0
    policy_padding_tokens: int = 0
    lookahead_generated_tokens: int = 0
    prm_forward_tokens: int = 0
    prm_new_steps: int = 0
    prm_scored_steps: int = 0

    def add(self, other: SearchCounters) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class Candidate:
    """A (partial) solution found by the search, with its per-step scores.

    score: the aggregate used to rank it (with lookahead, over its steps + the lookahead's).
    """

    steps: list[str]
    step_scores: list[float]
    score: float
    finished: bool

    @property
    def text(self) -> str:
        return STEP_SEPARATOR.join(self.steps)


@dataclass
class SearchResult:
    question: str
    candidates: list[Candidate]  # best first
    counters: SearchCounters = field(default_factory=SearchCounters)

    @property
    def best(self) -> Candidate:
        return self.candidates[0]


def is_answer_step(step: str) -> bool:
    """The step states the final answer ("The answer is ...", or a \\boxed{} answer)."""
    return step.strip().lower().startswith(ANSWER_PREFIX.strip().lower()) or "\\boxed{" in step


# ---------------------------------------------------------------- scoring adapter

class _ScoringSession:
    """Scores the new steps of one question's paths, incrementally when the scorer can.

    A path's scorer state is the scorer's `PrefixState` (incremental) or None.
    """

    def __init__(self, scorer, question: str, aggregation: str, counters: SearchCounters):
        self.scorer, self.question, self.aggregation, self.counters = scorer, question, aggregation, counters
        self.incremental = is_incremental(scorer)
        self._forward_at_start = getattr(scorer, "forward_tokens", 0)

    def root(self):
        return self.scorer.start(self.question) if self.incremental else None

    def extend(self, paths: list[tuple[list[str], list[float], object]], new_steps: list[str]
               ) -> list[tuple[list[float], object]]:
        """Score `new_steps[i]` after path i = (steps, step scores, scorer state).

        Returns, per path, the step scores of the extended path and its scorer state.
        """
        self.counters.prm_new_steps += len(new_steps)
        if not new_steps:
            return []
        if self.incremental:
            scores, states = self.scorer.extend([state for _, _, state in paths], list(new_steps))
            self.counters.prm_scored_steps += len(new_steps)
            return [(list(old) + [float(score)], state) for (_, old, _), score, state in zip(paths, scores, states)]
        extended = []
        for (steps, _, _), step in zip(paths, new_steps):
            full = list(steps) + [step]
            extended.append(([float(score) for score in self.scorer.score_steps(self.question, full)], None))
            self.counters.prm_scored_steps += len(full)
        return extended

    def close(self) -> None:
        self.counters.prm_forward_tokens += getattr(self.scorer, "forward_tokens", 0) - self._forward_at_start


@dataclass
class _Beam:
    steps: list[str]
    step_scores: list[float]
    score: float
    finished: bool
    policy_state: object
    scorer_state: object


# ------------------------------------------------------------------- the search

def beam_search(question: str, policy, scorer, config: BeamConfig) -> SearchResult:
    """Step-level beam search: keep the best width // beam_width candidates of each round.

    `policy` has `start(prefixes)` / `expand(states, k, *, temperature)` (`HFPolicy`);
    `scorer` is incremental (`start`/`extend`) or has `score_steps`. Candidates best first.
    """
    return _tree_search(question, policy, scorer, config, per_subtree=False)


def dvts(question: str, policy, scorer, config: BeamConfig) -> SearchResult:
    """Diverse verifier tree search: width // beam_width independent subtrees, each
    expanded beam_width times per round and keeping only its best child."""
    return _tree_search(question, policy, scorer, config, per_subtree=True)


def _tree_search(question: str, policy, scorer, config: BeamConfig, *, per_subtree: bool) -> SearchResult:
    counters = SearchCounters()
    policy_at_start = _policy_counts(policy)
    if hasattr(policy, "reseed"):
        policy.reseed(config.seed)
    session = _ScoringSession(scorer, question, config.aggregation, counters)
    root = _Beam([], [], 0.0, False, policy.start([policy_prompt(question)])[0], session.root())

    finished: list[_Beam] = []
    active = [root]
    for round_index in range(config.max_steps):
        if not active:
            break
        # Every round samples `width` steps. Round 1 samples them all from the root, whose
        # prompt is thus encoded once; later the live beams share them, so a beam whose
        # siblings finished takes over their samples (as search-and-learn refills the width
        # with copies of the active beams) and budgets stay equal across methods.
        first = round_index == 0
        expansions = _expand(policy, active, _shares(config.width, len(active)), config.temperature)
        parents = [beam for beam, children in zip(active, expansions) for _ in children]
        children = [child for group in expansions for child in group]
        candidates = _score_children(session, parents, children)
        if config.lookahead:
            _score_lookahead(session, policy, candidates, config, counters)
        if per_subtree:
            # Round 1 splits the root's children into n_beams subtrees; later each subtree
            # is one live beam's children.
            sizes = _shares(config.width, config.n_beams) if first else [len(group) for group in expansions]
            bounds = list(accumulate(sizes, initial=0))
            survivors = [_best(candidates[start:end]) for start, end in zip(bounds, bounds[1:])]
        else:
            # The kept paths, finished or not, stay n_beams in all.
            keep = config.n_beams - len(finished)
            ranked = sorted(range(len(candidates)), key=lambda i: -candidates[i].score)  # stable: ties by order
            survivors = [candidates[i] for i in sorted(ranked[:keep])]
        finished += [beam for beam in survivors if beam.finished]
        active = [beam for beam in survivors if not beam.finished]

    session.close()
    _add_policy_counts(counters, policy, policy_at_start)
    everything = finished + active
    order = sorted(range(len(everything)), key=lambda i: -everything[i].score)
    return SearchResult(
        question=question,
        candidates=[Candidate(list(b.steps), list(b.step_scores), b.score, b.finished)
                    for b in (everything[i] for i in order)],
        counters=counters,
    )


def _shares(total: int, n: int) -> list[int]:
    """`total` samples split over n beams as evenly as possible, the first ones taking the rest."""
    return [total // n + (i < total % n) for i in range(n)]


def _expand(policy, beams: list[_Beam], shares: list[int], temperature: float) -> list[list]:
    """`shares[i]` continuations of beam i, in beam order: one `policy.expand` per distinct
    share (at most two), so each beam's pending tokens are still encoded once."""
    expansions: list[list] = [[] for _ in beams]
    for k in sorted(set(shares), reverse=True):
        indices = [i for i, share in enumerate(shares) if share == k]
        groups = policy.expand([beams[i].policy_state for i in indices], k, temperature=temperature)
        for i, group in zip(indices, groups):
            expansions[i] = group
    return expansions


def _score_children(session: _ScoringSession, parents: list[_Beam], children) -> list[_Beam]:
    """Score each child's new step after its parent's path; children become beams."""
    extended = session.extend([(p.steps, p.step_scores, p.scorer_state) for p in parents],
                              [child.text for child in children])
    return [
        _Beam(steps=parent.steps + [child.text], step_scores=step_scores,
              score=aggregate(step_scores, session.aggregation),
              finished=child.finished or is_answer_step(child.text),
              policy_state=child.state, scorer_state=scorer_state)
        for parent, child, (step_scores, scorer_state) in zip(parents, children, extended)
    ]


def _score_lookahead(session: _ScoringSession, policy, beams: list[_Beam], config: BeamConfig,
                     counters: SearchCounters) -> None:
    """Roll each unfinished beam `config.lookahead` steps forward greedily (T=0), score
    those steps, and rank the beam by the aggregate over its path + the lookahead steps.
    The beam keeps its own steps and scores; the lookahead text is thrown away."""
    generated_before = getattr(policy, "generated_tokens", 0)
    # (beam index, policy state, steps, step scores, scorer state) of each rolling path
    rolling = [(i, b.policy_state, b.steps, b.step_scores, b.scorer_state) for i, b in enumerate(beams) if not b.finished]
    for _ in range(config.lookahead):
        if not rolling:
            break
        nexts = [group[0] for group in policy.expand([r[1] for r in rolling], 1, temperature=0.0)]
        extended = session.extend([(r[2], r[3], r[4]) for r in rolling], [step.text for step in nexts])
        advanced = []
        for (index, _, steps, _, _), step, (step_scores, scorer_state) in zip(rolling, nexts, extended):
            beams[index].score = aggregate(step_scores, config.aggregation)
            if not (step.finished or is_answer_step(step.text)):
                advanced.append((index, step.state, steps + [step.text], step_scores, scorer_state))
        rolling = advanced
    counters.lookahead_generated_tokens += getattr(policy, "generated_tokens", 0) - generated_before


def _best(group: list[_Beam]) -> _Beam:
    return max(group, key=lambda beam: beam.score)  # first of equals: deterministic


def _policy_counts(policy) -> tuple[int, int, int]:
    return tuple(getattr(policy, name, 0) for name in ("forward_tokens", "generated_tokens", "padding_tokens"))


def _add_policy_counts(counters: SearchCounters, policy, before: tuple[int, int, int]) -> None:
    after = _policy_counts(policy)
    counters.policy_forward_tokens += after[0] - before[0]
    counters.policy_generated_tokens += after[1] - before[1]
    counters.policy_padding_tokens += after[2] - before[2]


def best_of_n_search(question: str, policy, scorer, config: BeamConfig) -> SearchResult:
    """Best-of-N at the same budget: `config.width` whole solutions, ranked by aggregated
    step score. Works with any `Policy` (only `complete` is used)."""
    counters = SearchCounters()
    policy_at_start = _policy_counts(policy)
    if hasattr(policy, "reseed"):
        policy.reseed(config.seed)
    session = _ScoringSession(scorer, question, config.aggregation, counters)
    (texts,) = policy.complete([policy_prompt(question)], config.width)
    solutions = [split_steps(text, separator=STEP_SEPARATOR) for text in texts]
    scorable = [steps for steps in solutions if steps]
    if scorable and callable(getattr(scorer, "score_best_of_n", None)):
        scored = iter(scorer.score_best_of_n(question, scorable))
    else:
        scored = iter([scorer.score_steps(question, steps) for steps in scorable])
    counters.prm_new_steps = counters.prm_scored_steps = sum(len(steps) for steps in scorable)
    candidates = []
    for text, steps in zip(texts, solutions):
        step_scores = [float(score) for score in next(scored)] if steps else []
        finished = bool(steps) and is_answer_step(steps[-1])
        candidates.append(Candidate(steps, step_scores, aggregate(step_scores, config.aggregation), finished))
    session.close()
    _add_policy_counts(counters, policy, policy_at_start)
    order = sorted(range(len(candidates)), key=lambda i: -candidates[i].score)
    return SearchResult(question=question, candidates=[candidates[i] for i in order], counters=counters)


METHODS = {"beam": beam_search, "dvts": dvts, "best_of_n": best_of_n_search}
