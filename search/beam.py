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

from collections.abc import Sequence
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

    A path is (steps, step scores, scorer state); its scorer state is the scorer's own state
    (e.g. the PRM's `PrefixState`) or None for a scorer that re-scores whole paths.
    """

    def __init__(self, scorer, question: str, aggregation: str, counters: SearchCounters):
        self.scorer, self.question, self.aggregation, self.counters = scorer, question, aggregation, counters
        self.incremental = is_incremental(scorer)

    def root(self):
        return self.scorer.start(self.question) if self.incremental else None

    def rescore(self, paths: list[tuple[list[str], list[float], object]], new_steps: list[str]
                ) -> list[tuple[list[float], None]]:
        """A scorer without `extend`: each extended path scored whole with `score_steps`."""
        extended = []
        for (steps, _, _), step in zip(paths, new_steps):
            full = list(steps) + [step]
            extended.append(([float(score) for score in self.scorer.score_steps(self.question, full)], None))
            self.counters.prm_scored_steps += len(full)
        self.counters.prm_new_steps += len(new_steps)
        return extended


def _extend_incrementally(scorer, requests: list[tuple[_ScoringSession, list, list[str]]]) -> list[list]:
    """The new steps of several sessions' paths in one `scorer.extend`; per request, the step
    scores of each extended path and its scorer state."""
    paths = [path for _, request_paths, _ in requests for path in request_paths]
    steps = [step for _, _, request_steps in requests for step in request_steps]
    scores, states = scorer.extend([state for _, _, state in paths], steps) if steps else ([], [])
    extended = [(list(old) + [float(score)], state) for (_, old, _), score, state in zip(paths, scores, states)]
    replies = []
    for session, _, request_steps in requests:
        replies.append(extended[:len(request_steps)])
        extended = extended[len(request_steps):]
        session.counters.prm_new_steps += len(request_steps)
        session.counters.prm_scored_steps += len(request_steps)
    return replies


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
    return search_many([question], policy, scorer, [config], "beam")[0]


def dvts(question: str, policy, scorer, config: BeamConfig) -> SearchResult:
    """Diverse verifier tree search: width // beam_width independent subtrees, each
    expanded beam_width times per round and keeping only its best child."""
    return search_many([question], policy, scorer, [config], "dvts")[0]


def search_many(questions: Sequence[str], policy, scorer, configs: Sequence[BeamConfig], kind: str = "beam"
                ) -> list[SearchResult]:
    """Beam searches (`kind="beam"`) or DVTS runs of many questions in lockstep, one result each.

    Each search is the one `beam_search` / `dvts` runs; what the searches ask of the policy in a
    round (`expand` with the same k and temperature) goes to it in one call, and their new steps go
    to an incremental scorer in one `extend`, so the model runs a few large batches instead of many
    small ones. The searches share the policy's random stream, restarted with `configs[0].seed`:
    the same questions and configs give the same results, a question's result depends on the
    others of its batch. Token counts of the model calls a batch shares (the policy's forward and
    padding tokens, the scorer's forward tokens) are split over its searches by their rows;
    generated tokens are each search's own.
    """
    if kind not in ("beam", "dvts"):
        raise ValueError(f"unknown tree search {kind!r}; choose beam or dvts")
    if len(questions) != len(configs):
        raise ValueError(f"{len(questions)} questions for {len(configs)} configs")
    if not questions:
        return []
    if hasattr(policy, "reseed"):
        policy.reseed(configs[0].seed)
    sessions = [_ScoringSession(scorer, question, config.aggregation, SearchCounters())
                for question, config in zip(questions, configs)]
    roots = policy.start([policy_prompt(question) for question in questions])
    searches = {}
    for index, (root, session, config) in enumerate(zip(roots, sessions, configs)):
        before = getattr(scorer, "forward_tokens", 0)
        scorer_root = session.root()
        session.counters.prm_forward_tokens += getattr(scorer, "forward_tokens", 0) - before
        searches[index] = _tree_search(_Beam([], [], 0.0, False, root, scorer_root), session, config,
                                       per_subtree=kind == "dvts")
    requests = {index: next(search) for index, search in searches.items()}
    results: dict[int, SearchResult] = {}
    while requests:
        replies = _serve(policy, scorer, sessions, requests)
        requests = {}
        for index, reply in replies.items():
            try:
                requests[index] = searches[index].send(reply)
            except StopIteration as stop:
                results[index] = SearchResult(question=questions[index], candidates=stop.value,
                                              counters=sessions[index].counters)
    return [results[index] for index in range(len(questions))]


@dataclass
class _Expand:
    """A search asks for k continuations of each of `states` at `temperature`."""

    states: list
    k: int
    temperature: float


@dataclass
class _Score:
    """A search asks for the scores of `new_steps[i]` after `paths[i]` = (steps, step scores, scorer state)."""

    paths: list
    new_steps: list[str]


def _serve(policy, scorer, sessions: list[_ScoringSession], requests: dict[int, _Expand | _Score]
           ) -> dict[int, list]:
    """Answer one request of every search: expansions with the same k and temperature in one
    `policy.expand`, incremental scoring in one `scorer.extend`, the rest search by search."""
    replies: dict[int, list] = {}
    expansions: dict[tuple[int, float], list[int]] = {}
    scorings: list[int] = []
    for index, request in requests.items():
        if isinstance(request, _Expand):
            expansions.setdefault((request.k, request.temperature), []).append(index)
        elif sessions[index].incremental:
            scorings.append(index)
        else:
            before = getattr(scorer, "forward_tokens", 0)
            replies[index] = sessions[index].rescore(request.paths, request.new_steps)
            sessions[index].counters.prm_forward_tokens += getattr(scorer, "forward_tokens", 0) - before
    for (k, temperature), indices in expansions.items():
        before = _policy_counts(policy)
        groups = policy.expand([state for i in indices for state in requests[i].states], k, temperature=temperature)
        forward, _, padding = (after - start for after, start in zip(_policy_counts(policy), before))
        rows = [len(requests[i].states) for i in indices]
        for i, count, forward_share, padding_share in zip(indices, rows, _split(forward, rows), _split(padding, rows)):
            replies[i], groups = groups[:count], groups[count:]
            counters = sessions[i].counters
            counters.policy_generated_tokens += sum(len(child.token_ids) for group in replies[i] for child in group)
            counters.policy_forward_tokens += forward_share
            counters.policy_padding_tokens += padding_share
    if scorings:
        before = getattr(scorer, "forward_tokens", 0)
        batch = [(sessions[i], requests[i].paths, requests[i].new_steps) for i in scorings]
        for i, reply in zip(scorings, _extend_incrementally(scorer, batch)):
            replies[i] = reply
        forward = getattr(scorer, "forward_tokens", 0) - before
        for i, share in zip(scorings, _split(forward, [len(requests[i].new_steps) for i in scorings])):
            sessions[i].counters.prm_forward_tokens += share
    return replies


def _split(total: int, weights: list[int]) -> list[int]:
    """`total` in integer parts proportional to `weights` (the first parts take the remainder)."""
    whole = sum(weights)
    if not whole:
        return [0] * len(weights)
    parts = [total * weight // whole for weight in weights]
    for i in range(total - sum(parts)):
        parts[i % len(parts)] += 1
    return parts


def _tree_search(root: _Beam, session: _ScoringSession, config: BeamConfig, *, per_subtree: bool):
    """One search as a generator: it yields `_Expand` / `_Score` requests, is sent their replies,
    and returns its candidates, best first (`search_many` drives it)."""
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
        expansions = yield from _expand(active, _shares(config.width, len(active)), config.temperature)
        parents = [beam for beam, children in zip(active, expansions) for _ in children]
        children = [child for group in expansions for child in group]
        candidates = yield from _score_children(session, parents, children)
        if config.lookahead:
            yield from _score_lookahead(session, candidates, config)
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

    everything = finished + active
    order = sorted(range(len(everything)), key=lambda i: -everything[i].score)
    return [Candidate(list(b.steps), list(b.step_scores), b.score, b.finished) for b in (everything[i] for i in order)]


def _shares(total: int, n: int) -> list[int]:
    """`total` samples split over n beams as evenly as possible, the first ones taking the rest."""
    return [total // n + (i < total % n) for i in range(n)]


def _expand(beams: list[_Beam], shares: list[int], temperature: float):
    """`shares[i]` continuations of beam i, in beam order: one expansion per distinct share (at
    most two), so each beam's pending tokens are still encoded once."""
    expansions: list[list] = [[] for _ in beams]
    for k in sorted(set(shares), reverse=True):
        indices = [i for i, share in enumerate(shares) if share == k]
        groups = yield _Expand([beams[i].policy_state for i in indices], k, temperature)
        for i, group in zip(indices, groups):
            expansions[i] = group
    return expansions


def _score_children(session: _ScoringSession, parents: list[_Beam], children):
    """Score each child's new step after its parent's path; children become beams."""
    extended = yield _Score([(p.steps, p.step_scores, p.scorer_state) for p in parents],
                            [child.text for child in children])
    return [
        _Beam(steps=parent.steps + [child.text], step_scores=step_scores,
              score=aggregate(step_scores, session.aggregation),
              finished=child.finished or is_answer_step(child.text),
              policy_state=child.state, scorer_state=scorer_state)
        for parent, child, (step_scores, scorer_state) in zip(parents, children, extended)
    ]


def _score_lookahead(session: _ScoringSession, beams: list[_Beam], config: BeamConfig):
    """Roll each unfinished beam `config.lookahead` steps forward greedily (T=0), score
    those steps, and rank the beam by the aggregate over its path + the lookahead steps.
    The beam keeps its own steps and scores; the lookahead text is thrown away."""
    # (beam index, policy state, steps, step scores, scorer state) of each rolling path
    rolling = [(i, b.policy_state, b.steps, b.step_scores, b.scorer_state) for i, b in enumerate(beams) if not b.finished]
    for _ in range(config.lookahead):
        if not rolling:
            break
        generated_before = session.counters.policy_generated_tokens
        nexts = [group[0] for group in (yield _Expand([r[1] for r in rolling], 1, 0.0))]
        session.counters.lookahead_generated_tokens += session.counters.policy_generated_tokens - generated_before
        extended = yield _Score([(r[2], r[3], r[4]) for r in rolling], [step.text for step in nexts])
        advanced = []
        for (index, _, steps, _, _), step, (step_scores, scorer_state) in zip(rolling, nexts, extended):
            beams[index].score = aggregate(step_scores, config.aggregation)
            if not (step.finished or is_answer_step(step.text)):
                advanced.append((index, step.state, steps + [step.text], step_scores, scorer_state))
        rolling = advanced


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
    scorer_at_start = getattr(scorer, "forward_tokens", 0)
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
    counters.prm_forward_tokens = getattr(scorer, "forward_tokens", 0) - scorer_at_start
    _add_policy_counts(counters, policy, policy_at_start)
    order = sorted(range(len(candidates)), key=lambda i: -candidates[i].score)
    return SearchResult(question=question, candidates=[candidates[i] for i in order], counters=counters)


METHODS = {"beam": beam_search, "dvts": dvts, "best_of_n": best_of_n_search}
