"""Dense step rewards for token sequences of a policy, without verl: the core of the verl manager.

For each response: decode the policy's tokens, split the text into steps, score every step with a
step scorer (a PRM from `prm.load`, the checker as `search.scorers.VerifierScorer`, or a
`WeightedScorer` mix), score the outcome, turn the step scores into per-step rewards with a
credit form (`prm.ppo.credit`), and put step k's reward on the policy token that ends step k and
the outcome on the last response token.

Tokens and text. The policy's and the scorer's tokenizers may differ, so steps are mapped to
policy tokens through character offsets, never token ids: `token_text_ends` decodes the response
incrementally (a small window of tokens at a time, as vLLM's detokenizer does) and records after
each token how many characters of the response text are known. A token that ends inside a
multi-byte character adds nothing until the token that completes it. The response text is the
concatenation of those pieces; steps are located in it (a step the splitter took from a
CRLF-normalised copy, style "blank", is found ignoring carriage returns: `locate_steps`), and
step k's last token is the first token whose end offset reaches the end of the step's last
(non-space) character. Special tokens
(EOS) decode to "" and so never end a step; the outcome goes on the last response token whatever
it is (EOS when the response finished).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from prm.ppo.credit import CREDIT_FORMS, assign_credit, process_grpo_rewards
from search.scorers import WeightedScorer
from tasks.math.steps import split_steps

OUTCOME_KINDS = ("answer", "compute_score", "orm", "none")
PROMPT_SOURCES = ("auto", "decoded", "raw_prompt", "extra_info")


def token_text_ends(tokenizer, ids: Sequence[int]) -> tuple[str, list[int]]:
    """(text, ends): the decoded response and, for token i, the length of the text known once
    tokens 0..i are decoded (non-decreasing; ends[-1] == len(text)).

    Incremental decode as in vLLM's detokenizer: token i's piece is decode(ids[p:i+1]) minus
    decode(ids[p:r]), where [p, r) are the tokens of the previous piece, kept as left context
    (so a sentencepiece token keeps its leading space). A piece ending in U+FFFD (a byte-level
    token ending inside a multi-byte character) waits: the token that completes the character
    emits it.
    """
    ids = [int(i) for i in ids]

    def decode(chunk):
        return tokenizer.decode(chunk, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    parts: list[str] = []
    length = 0
    ends: list[int] = []
    prefix, read, prefix_text = 0, 0, ""
    for i in range(len(ids)):
        new_text = decode(ids[prefix : i + 1])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            piece = new_text[len(prefix_text):]
            parts.append(piece)
            length += len(piece)
            prefix, read = read, i + 1
            prefix_text = decode(ids[prefix:read])
        ends.append(length)
    if read < len(ids):  # the response ends inside a character: show what a full decode shows
        tail = decode(ids[prefix:])[len(prefix_text):]
        if tail:
            parts.append(tail)
            ends[-1] = length + len(tail)
    return "".join(parts), ends


def locate_steps(text: str, steps: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans [start, end) of each (stripped) step, found in order in `text`.

    A step is looked up verbatim first. One that is not there (style "blank" splits a copy of
    the text with CRLF turned into LF, so its multi-line steps hold "\\n" where the text has
    "\\r\\n") is looked up with carriage returns left out of both, and its span is mapped back
    to `text`: from the step's first character to its last, CRs inside included. (Leaving every
    CR out maps "\\r\\n" and "\\n" alike, so whatever CRLF normalisation the splitter did, the
    step is found.)
    """
    spans, cursor = [], 0
    kept: list[int] | None = None  # indices in `text` of its non-CR characters, built on first need
    for step in steps:
        start = text.find(step, cursor)
        if start >= 0:
            end = start + len(step)
        else:
            if kept is None:
                kept = [i for i, char in enumerate(text) if char != "\r"]
                bare_text = "".join(text[i] for i in kept)
            bare_step = step.replace("\r", "")
            found = bare_text.find(bare_step, bisect.bisect_left(kept, cursor)) if bare_step else -1
            if found < 0:
                raise ValueError(f"step {step[:40]!r} not found in the response text after offset {cursor}")
            start, end = kept[found], kept[found + len(bare_step) - 1] + 1
        spans.append((start, end))
        cursor = end
    return spans


def step_end_tokens(ends: Sequence[int], spans: Sequence[tuple[int, int]]) -> list[int]:
    """For each step span, the index of the first token whose text reaches the step's end."""
    return [min(bisect.bisect_left(ends, end), len(ends) - 1) for _, end in spans]


@dataclass
class ResponseRewards:
    """One response's rewards before placement; `rewards` holds the credit-form values."""

    prompt: str
    text: str
    steps: list[str]
    step_tokens: list[int]          # policy token index ending each step
    step_scores: list[float]        # the scorer's raw score per step
    outcome: float | None           # outcome score (before outcome_coef), None if not scored
    length: int                     # valid response tokens
    group: Any = None               # prompt id (verl's uid): process_grpo normalises per group
    step_rewards: list[float] = field(default_factory=list)   # after the credit form and step_coef
    outcome_reward: float = 0.0                                # after outcome_coef (and normalisation)

    def dense(self) -> list[float]:
        """[length] per-token rewards: step rewards at step ends, outcome on the last token."""
        out = [0.0] * self.length
        for index, value in zip(self.step_tokens, self.step_rewards, strict=True):
            out[index] += value
        if self.length:
            out[-1] += self.outcome_reward
        return out


@dataclass
class DenseRewardConfig:
    """Options of the dense reward (the verl manager's options, by the same names).

    credit: one of `prm.ppo.credit.CREDIT_FORMS` ("sum", "min", "process_grpo", "progress").
    min_temperature: PURE's softmin temperature for "min" (0 = the exact minimum).
    progress_baseline: v_{-1} for "progress".
    step_coef / outcome_coef: multipliers of the step rewards and of the outcome.
    outcome: "answer" (the toolkit's check: extracted answer equivalent to the ground truth,
        1.0 / 0.0), "compute_score" (verl's compute_score(data_source, solution_str,
        ground_truth, extra_info)), "orm" (an outcome scorer's score(prompt, completion)),
        "none".
    step_style: `tasks.math.steps.split_steps` style ("lines": one step a line, the toolkit's
        convention; "blank" for models that separate steps by blank lines, e.g. Qwen2.5-Math).
    prompt_source: what the scorer sees as the prompt: "raw_prompt" (the last user message of
        verl's raw chat), "extra_info" (extra_info["question"]), "decoded" (the decoded prompt
        tokens), "auto" (the first of those that exists).
    """

    credit: str = "sum"
    min_temperature: float = 0.0
    progress_baseline: float = 0.5
    step_coef: float = 1.0
    outcome: str = "answer"
    outcome_coef: float = 1.0
    step_style: str = "lines"
    prompt_source: str = "auto"

    def __post_init__(self):
        if self.credit not in CREDIT_FORMS:
            raise ValueError(f"unknown credit {self.credit!r}; choose one of {CREDIT_FORMS}")
        if self.outcome not in OUTCOME_KINDS:
            raise ValueError(f"unknown outcome {self.outcome!r}; choose one of {OUTCOME_KINDS}")
        if self.prompt_source not in PROMPT_SOURCES:
            raise ValueError(f"unknown prompt_source {self.prompt_source!r}; choose one of {PROMPT_SOURCES}")


def choose_prompt(source: str, decoded: str, raw_prompt=None, extra_info: Mapping | None = None) -> str:
    """The prompt text the step scorer sees (see `DenseRewardConfig.prompt_source`)."""
    def from_raw():
        if raw_prompt is None:
            return None
        messages = list(raw_prompt)
        users = [m.get("content") for m in messages if isinstance(m, Mapping) and m.get("role") == "user"]
        return users[-1] if users and isinstance(users[-1], str) else None

    def from_extra():
        if isinstance(extra_info, Mapping) and isinstance(extra_info.get("question"), str):
            return extra_info["question"]
        return None

    if source == "decoded":
        return decoded
    if source == "raw_prompt":
        value = from_raw()
    elif source == "extra_info":
        value = from_extra()
    else:
        value = from_raw() or from_extra()
    return decoded if value is None else value


def score_all(scorer, prompts: Sequence[str], steps_lists: Sequence[Sequence[str]]) -> list[list[float]]:
    """Step scores for many (prompt, steps); one batched call when the scorer has
    `score_steps_batch` (a PRM), else one `score_steps` per solution. Empty solutions: []."""
    order = [i for i, steps in enumerate(steps_lists) if steps]
    out: list[list[float]] = [[] for _ in steps_lists]
    if not order:
        return out
    if isinstance(scorer, WeightedScorer):  # mix per component, each one batched
        for component, weight in scorer.components:
            for row, values in zip(out, score_all(component, prompts, steps_lists)):
                if not row:
                    row.extend([0.0] * len(values))
                for j, value in enumerate(values):
                    row[j] += weight * value
        return out
    if hasattr(scorer, "score_steps_batch"):
        scores = scorer.score_steps_batch([prompts[i] for i in order], [list(steps_lists[i]) for i in order])
    else:
        scores = [scorer.score_steps(prompts[i], list(steps_lists[i])) for i in order]
    for i, values in zip(order, scores):
        if len(values) != len(steps_lists[i]):
            raise ValueError(f"scorer returned {len(values)} scores for {len(steps_lists[i])} steps")
        out[i] = [float(v) for v in values]
    return out


class DenseRewarder:
    """Per-token dense rewards for a batch of policy responses (framework-free).

    step_scorer: anything with `score_steps(prompt, steps)` (a `prm.load` scorer, a
        `search.scorers.VerifierScorer`, a `WeightedScorer`).
    outcome_scorer: for outcome="orm", anything with `score(prompt, completion)`.
    compute_score: for outcome="compute_score", verl's signature.
    """

    def __init__(self, tokenizer, step_scorer, config: DenseRewardConfig | None = None, *,
                 outcome_scorer=None, compute_score: Callable[..., Any] | None = None):
        self.tokenizer = tokenizer
        self.step_scorer = step_scorer
        self.config = config or DenseRewardConfig()
        self.outcome_scorer = outcome_scorer
        self.compute_score = compute_score
        if self.config.outcome == "orm" and outcome_scorer is None:
            raise ValueError("outcome='orm' needs an outcome scorer (orm_path)")
        if self.config.outcome == "compute_score" and compute_score is None:
            raise ValueError("outcome='compute_score' needs verl's compute_score function")

    # -- one response, before scoring
    def prepare(self, response_ids: Sequence[int], prompt: str) -> ResponseRewards:
        text, ends = token_text_ends(self.tokenizer, response_ids)
        steps = split_steps(text, self.config.step_style) if text.strip() else []
        spans = locate_steps(text, steps)
        tokens = step_end_tokens(ends, spans) if steps else []
        return ResponseRewards(prompt=prompt, text=text, steps=steps, step_tokens=tokens, step_scores=[],
                               outcome=None, length=len(ends))

    def outcome_of(self, item: ResponseRewards, ground_truth=None, data_source=None, extra_info=None) -> float | None:
        kind = self.config.outcome
        if kind == "none":
            return None
        if kind == "answer":
            import verifiers

            if ground_truth is None:
                return None
            # A stated answer only: a response cut off by max_response_length is not paid for its last number.
            return 1.0 if verifiers.is_correct(str(ground_truth), item.text, stated=True) else 0.0
        if kind == "orm":
            return float(self.outcome_scorer.score(item.prompt, item.text))
        result = self.compute_score(data_source=data_source, solution_str=item.text, ground_truth=ground_truth,
                                    extra_info=dict(extra_info or {}))
        return float(result["score"] if isinstance(result, Mapping) else result)

    def score(self, items: list[ResponseRewards]) -> None:
        """Fill `step_scores` of every item (one batched scorer call)."""
        scores = score_all(self.step_scorer, [it.prompt for it in items], [it.steps for it in items])
        for item, values in zip(items, scores):
            item.step_scores = values

    def assign(self, items: list[ResponseRewards]) -> None:
        assign_rewards(items, self.config)


def assign_rewards(items: list[ResponseRewards], config: DenseRewardConfig) -> None:
    """Apply the credit form and coefficients: fill `step_rewards` and `outcome_reward`.

    "sum", "min", "progress": each response alone; step_coef times the form's step values, and
    outcome_coef * outcome on the last token.

    "process_grpo" (DeepSeekMath, the toolkit PPO's `process_group_advantages`): within each group
    (items sharing `group`: verl's uid, the samples of one prompt), the placed rewards
    step_coef * score_k and, where scored, outcome_coef * outcome are pooled and normalised
    together, r~ = (r - mean) / (std + 1e-4) (`prm.ppo.credit.process_grpo_rewards`). The
    reward-to-go of a token (verl estimator "prm_reward_to_go") is then its process advantage.
    """
    groups: dict[Any, list[int]] = {}
    for index, item in enumerate(items):
        key = item.group if config.credit == "process_grpo" else ("alone", index)
        groups.setdefault(key, []).append(index)
    for members in groups.values():
        if config.credit == "process_grpo":
            pooled = [[config.step_coef * v for v in items[i].step_scores]
                      + ([] if items[i].outcome is None else [config.outcome_coef * float(items[i].outcome)])
                      for i in members]
            for i, values in zip(members, process_grpo_rewards(pooled)):
                n = len(items[i].step_scores)
                items[i].step_rewards = values[:n]
                items[i].outcome_reward = values[n] if len(values) > n else 0.0
            continue
        rewards = assign_credit(config.credit, [items[i].step_scores for i in members],
                                temperature=config.min_temperature, baseline=config.progress_baseline)
        for i, values in zip(members, rewards):
            outcome = items[i].outcome
            items[i].step_rewards = [config.step_coef * v for v in values]
            items[i].outcome_reward = 0.0 if outcome is None else config.outcome_coef * float(outcome)


def scalar_reward(item: ResponseRewards, config: DenseRewardConfig) -> float:
    """One response's scalar reward: what verl keeps where only a float survives (the agent
    loop's `reward_score`, put on the last token) and what the managers log as "score".

    "sum", "min", "progress": the total of the response's placed rewards, sum(dense()):
        step_coef * (the form's step values, summed) + outcome_coef * outcome.
    "process_grpo": the task reward before the group normalisation, step_coef * sum_k score_k
        + outcome_coef * outcome (the outcome term only where scored): the total of the raw
        rewards its group pools, i.e. what the "sum" form gives. A response scored alone (the
        reward-loop manager's `run_single`) does not know its group, and normalised against
        itself its rewards sum to 0 whatever its scores, so that total would carry no signal.
    Reads step_scores, outcome, length and config only; `item` is left as it is.
    """
    form = "sum" if config.credit == "process_grpo" else config.credit
    alone = replace(item, step_rewards=[], outcome_reward=0.0)
    assign_rewards([alone], replace(config, credit=form))
    return float(sum(alone.dense()))
