"""Fast scoring with a reward model: one forward pass per solution, shared prompts, KV reuse.

`prm.load(path_or_hub_id)` returns a `RewardScorer`. Every way of scoring goes through one
routine, `RewardScorer._advance`: a batch of prefixes (each with an optional KV cache) is
continued by some steps, only the tokens not already in a cache are run through the model,
and each new step's score is read at the token that ends it::

    score_steps(prompt, steps)            blank prefix  + all steps        (one forward pass)
    score_steps_batch(prompts, steps)     blank prefixes + all steps       (batched, length-sorted)
    score_best_of_n(prompt, solutions)    start(prompt), shared by N       (prompt run once)
    extend(states, new_steps)             each state's cache + one step    (beam search)

A `StepEncoder` turns `(prompt, steps)` into token ids and the position where each step's
score is read: `NativeEncoder` for models of this toolkit (through `prm.encoding.encode_steps`),
and the published formats of `prm.published`. Continuing a prefix re-tokenizes the whole text
and runs only the ids after the longest common prefix with the cached ids, so a tokenizer that
merges across a step boundary costs a few re-run tokens, never a wrong score.

A state's cache is its own copy of per-layer keys and values (shape [1, heads, length, dim]);
states are never mutated, so one state can be extended by many candidate steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from prm.encoding import EncodedSteps, encode_steps
from tasks.math.steps import split_steps
from tasks.math.limits import TooLong, max_positions

AGGREGATIONS = ("min", "prod", "last", "mean")

# Per-layer (keys, values), each [1, heads, length, head_dim].
LayerCache = tuple[tuple[torch.Tensor, torch.Tensor], ...]


def aggregate(scores: Sequence[float], how: str = "min") -> float:
    """One solution score from its step scores: min | prod | last | mean.

    A solution with no steps scores 0.0, the lowest probability, so it never wins a rerank
    or survives a beam.
    """
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {how!r}")
    if len(scores) == 0:
        return 0.0
    if how == "min":
        return float(min(scores))
    if how == "prod":
        return float(math.prod(scores))
    if how == "last":
        return float(scores[-1])
    return float(sum(scores) / len(scores))


class StepEncoder(Protocol):
    separator: str  # splits a completion into steps in `RewardScorer.score`

    def encode(self, prompt: str, steps: Sequence[str]) -> EncodedSteps:
        """With no steps: the ids every continuation of `prompt` starts with."""
        ...


class _MemoTokenizer:
    """A tokenizer whose plain `encode(text, add_special_tokens=...)` results are remembered.

    `encode_steps` tokenizes every piece on its own, and the prompt and separator again for
    every solution; per-call overhead of a transformers tokenizer (~0.3 ms) then rivals a tiny
    model's forward pass. `prefetch` tokenizes many pieces in one batched call.
    """

    def __init__(self, tokenizer, limit: int = 100_000):
        self._tokenizer = tokenizer
        self._limit = limit
        self._cache: dict[tuple[str, bool], tuple[int, ...]] = {}

    def encode(self, text, add_special_tokens: bool = True, **kwargs):
        if kwargs or not isinstance(text, str):
            return self._tokenizer.encode(text, add_special_tokens=add_special_tokens, **kwargs)
        key = (text, add_special_tokens)
        if key not in self._cache:
            self._remember([text], add_special_tokens, [self._tokenizer.encode(text, add_special_tokens=add_special_tokens)])
        return list(self._cache[key])

    def prefetch(self, texts: Sequence[str]) -> None:
        missing = list({text for text in texts if (text, False) not in self._cache})
        if missing:
            self._remember(missing, False, self._tokenizer(missing, add_special_tokens=False)["input_ids"])

    def _remember(self, texts, add_special_tokens: bool, ids_lists) -> None:
        if len(self._cache) + len(texts) > self._limit:
            self._cache.clear()
        for text, ids in zip(texts, ids_lists):
            self._cache[(text, add_special_tokens)] = tuple(ids)

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


class NativeEncoder:
    """Models of this toolkit: `prm.encoding.encode_steps`, score read at each step's separator."""

    def __init__(self, tokenizer, settings):
        self.tokenizer = tokenizer
        self.settings = settings
        self.separator = settings.separator
        self._memo = _MemoTokenizer(tokenizer)

    def encode(self, prompt: str, steps: Sequence[str]) -> EncodedSteps:
        return encode_steps(self._memo, prompt, list(steps), self.settings)

    def prefetch(self, texts: Sequence[str]) -> None:
        """Tokenize step texts in one batched call before they are encoded one by one."""
        self._memo.prefetch(texts)


@dataclass(frozen=True, eq=False)
class PrefixState:
    """A scored prefix for incremental scoring (step-level beam search).

    input_ids: the ids run so far; cache: their keys/values (None: nothing cached, the next
    `extend` runs the whole prefix); step_scores: the probability of each step in `steps`;
    outcome_score: the outcome head's probability that the solution is right if it ended
    here (None for a model without an outcome head); lowest_features: for a model with
    outcome likelihood features, their min over the steps so far (what the next outcome needs
    of the cached steps).
    """

    prompt: str
    steps: tuple[str, ...]
    input_ids: tuple[int, ...]
    step_scores: tuple[float, ...]
    cache: LayerCache | None = None
    outcome_score: float | None = None
    lowest_features: torch.Tensor | None = None


@dataclass
class _Row:
    state: PrefixState
    ids: list[int]
    reuse: int  # leading ids whose keys/values come from state.cache
    new_positions: list[int]  # reading positions of the new steps, in ids


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    length = 0
    for x, y in zip(a, b):
        if x != y:
            break
        length += 1
    return length


class RewardScorer:
    """Scores steps with a `prm.modeling.RewardModel` (or anything with its forward contract).

    model(input_ids [B,T], attention_mask [B,P+T], past_key_values, use_cache, position_ids [B,T])
    must return an object with step_logits [B,T] (log-odds), outcome_logits [B,T] | None and
    past_key_values. `forward_tokens` counts the tokens run through the model (pads excluded).
    """

    def __init__(self, model, tokenizer, encoder: StepEncoder | None = None, *, aggregation: str | None = None,
                 batch_size: int = 16, format: str = "native"):
        self.model = model.train(False)
        self.tokenizer = tokenizer
        self.settings = getattr(model, "settings", None)
        self.encoder = encoder if encoder is not None else NativeEncoder(tokenizer, self.settings)
        self.aggregation = aggregation or getattr(self.settings, "aggregation", "min")
        aggregate([1.0], self.aggregation)  # validates the name early
        self.batch_size = batch_size
        self.format = format
        self.forward_tokens = 0
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = pad if pad is not None else 0
        self.max_positions = max_positions(model)  # an input longer than this raises TooLong

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def has_outcome_head(self) -> bool:
        return bool(getattr(self.settings, "has_outcome_head", False))

    # ------------------------------------------------------------------ public API
    def score_steps(self, prompt: str, steps: Sequence[str]) -> list[float]:
        """The probability that each step is correct; all steps in one forward pass."""
        return self.score_steps_batch([prompt], [steps])[0]

    def score_steps_batch(self, prompts: Sequence[str], steps_lists: Sequence[Sequence[str]],
                          batch_size: int | None = None, progress: bool = False) -> list[list[float]]:
        """`score_steps` for many solutions, batched by similar length; results in input order."""
        if len(prompts) != len(steps_lists):
            raise ValueError(f"{len(prompts)} prompts for {len(steps_lists)} step lists")
        states = [self._blank(prompt) for prompt in prompts]
        scores, _ = self._advance(states, steps_lists, keep_cache=False, batch_size=batch_size, progress=progress)
        return scores

    def score_best_of_n(self, prompt: str, solutions: Sequence[Sequence[str]],
                        batch_size: int | None = None) -> list[list[float]]:
        """Step scores of N solutions to one prompt; the prompt is run once and its KV cache
        is shared by every solution."""
        return self.score_solutions(prompt, solutions, batch_size)[0]

    def score_solutions(self, prompt: str, solutions: Sequence[Sequence[str]],
                        batch_size: int | None = None) -> tuple[list[list[float]], list[float | None]]:
        """Step scores and outcome scores of N solutions in the same shared-prompt pass.

        A joint model (step head and outcome head on one backbone) gives both for the price of
        one forward; outcome scores are None when the model has no outcome head.
        """
        root = self.start(prompt)
        scores, states = self._advance([root] * len(solutions), solutions, keep_cache=False, batch_size=batch_size)
        return scores, [state.outcome_score if steps else None for state, steps in zip(states, solutions)]

    def score(self, prompt: str, completion: str) -> float:
        """A solution score: the outcome head at the last step if the model has one, else the
        step scores aggregated with the model's default aggregation. The completion is split
        into steps at the encoder's separator."""
        steps = split_steps(completion, separator=self.encoder.separator)
        if not steps:
            raise ValueError("the completion has no non-empty step")
        (step_scores,), (outcome,) = self.score_solutions(prompt, [steps])
        return outcome if outcome is not None else self.aggregate(step_scores)

    def aggregate(self, scores: Sequence[float], how: str | None = None) -> float:
        """`aggregate` with this model's default aggregation unless `how` is given."""
        return aggregate(scores, how or self.aggregation)

    def start(self, prompt: str) -> PrefixState:
        """The prompt run once, its cache kept: the root of incremental scoring."""
        ids = list(self.encoder.encode(prompt, []).input_ids)
        if self.max_positions and len(ids) > self.max_positions:
            raise TooLong(len(ids), self.max_positions, "prompt")
        if not ids:
            return self._blank(prompt)
        row = _Row(self._blank(prompt), ids, 0, [])
        ((_, _, cache, _),) = self._run([row], keep_cache=True)
        return PrefixState(prompt, (), tuple(ids), (), cache)

    def extend(self, states: Sequence[PrefixState], new_steps: Sequence[str],
               batch_size: int | None = None) -> tuple[list[float], list[PrefixState]]:
        """Score one new step on each state, running only the new tokens (batched over states).

        Returns the new step's probability for each state and the extended states. A state may
        appear several times (one per candidate step); states are never modified.
        """
        if len(states) != len(new_steps):
            raise ValueError(f"{len(states)} states for {len(new_steps)} new steps")
        scores, new_states = self._advance(states, [[step] for step in new_steps], keep_cache=True,
                                           batch_size=batch_size)
        return [row[0] for row in scores], new_states

    def extend_many(self, states: Sequence[PrefixState], steps_lists: Sequence[Sequence[str]],
                    batch_size: int | None = None) -> tuple[list[list[float]], list[PrefixState]]:
        """Like `extend` with several new steps per state (lookahead); one score per new step."""
        return self._advance(states, steps_lists, keep_cache=True, batch_size=batch_size)

    def length(self, prompt: str, steps: Sequence[str]) -> int:
        """Tokens the model reads for `prompt` and `steps` (compare with `max_positions`)."""
        return len(self._encode(prompt, steps).input_ids)

    # ------------------------------------------------------------------ internals
    def _blank(self, prompt: str) -> PrefixState:
        return PrefixState(prompt, (), (), (), None)

    def _encode(self, prompt: str, steps: Sequence[str]) -> EncodedSteps:
        encoded = self.encoder.encode(prompt, steps)
        if len(encoded.step_ends) != len(steps):
            raise ValueError(
                f"{len(steps)} steps but {len(encoded.step_ends)} reading positions: a step or the prompt "
                "probably contains the step marker of this format"
            )
        if encoded.step_ends:
            return EncodedSteps(encoded.input_ids[: encoded.step_ends[-1] + 1], encoded.step_ends)
        return encoded

    def _advance(self, states: Sequence[PrefixState], steps_lists: Sequence[Sequence[str]], *, keep_cache: bool,
                 batch_size: int | None = None, progress: bool = False
                 ) -> tuple[list[list[float]], list[PrefixState]]:
        """Continue each state by its steps; returns the new steps' scores and the new states."""
        if len(states) != len(steps_lists):
            raise ValueError(f"{len(states)} prefixes for {len(steps_lists)} step lists")
        prefetch = getattr(self.encoder, "prefetch", None)
        if prefetch is not None:
            prefetch([step for new_steps in steps_lists for step in new_steps])
        rows: list[_Row | None] = []
        # A solution that appears again on the same state (a confident policy's samples repeat) is
        # encoded and run once; its copies get the first one's results, cache included (states are
        # never modified).
        first_of: dict[tuple, int] = {}
        copies: dict[int, int] = {}
        for index, (state, new_steps) in enumerate(zip(states, steps_lists)):
            if isinstance(new_steps, str):
                raise TypeError("steps must be a list of strings, got a single string")
            if not new_steps:
                rows.append(None)
                continue
            copies[index] = first_of.setdefault(
                (state.prompt, state.steps, state.input_ids, id(state.cache), tuple(new_steps)), index)
            if copies[index] != index:
                rows.append(rows[copies[index]])
                continue
            steps = state.steps + tuple(new_steps)
            encoded = self._encode(state.prompt, steps)
            if self.max_positions and len(encoded.input_ids) > self.max_positions:
                raise TooLong(len(encoded.input_ids), self.max_positions)
            new_positions = encoded.step_ends[len(state.steps):]
            reuse = 0
            if state.cache is not None:
                reuse = min(_common_prefix(state.input_ids, encoded.input_ids), new_positions[0])
            rows.append(_Row(state, encoded.input_ids, reuse, new_positions))

        results: dict[int, tuple[list[float], float | None, LayerCache | None, torch.Tensor | None]] = {}
        live = [index for index, row in enumerate(rows) if row is not None and copies[index] == index]
        # Longest first: similar lengths share a batch, so little padding is run.
        live.sort(key=lambda index: len(rows[index].ids) - rows[index].reuse, reverse=True)
        size = batch_size or self.batch_size
        chunks = [live[start: start + size] for start in range(0, len(live), size)]
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc="scoring", unit="batch")
        for chunk in chunks:
            for index, result in zip(chunk, self._run([rows[index] for index in chunk], keep_cache)):
                results[index] = result
        for index, first in copies.items():
            results[index] = results[first]

        scores: list[list[float]] = []
        new_states: list[PrefixState] = []
        for index, (state, row) in enumerate(zip(states, rows)):
            if row is None:
                scores.append([])
                new_states.append(state)
                continue
            step_scores, outcome, cache, lowest = results[index]
            scores.append(step_scores)
            new_states.append(PrefixState(state.prompt, state.steps + tuple(steps_lists[index]),
                                          tuple(row.ids), state.step_scores + tuple(step_scores), cache, outcome,
                                          lowest))
        return scores, new_states

    def _run(self, rows: list[_Row], keep_cache: bool
             ) -> list[tuple[list[float], float | None, LayerCache | None, torch.Tensor | None]]:
        """One forward pass over rows: each row's cached keys/values are left-padded to the longest
        cache, its new ids right-padded to the longest continuation, so every row's tokens keep
        their true positions. Returns per row the new steps' probabilities, the outcome probability
        at its last new step (None without an outcome head or new steps), (if asked) its cache and,
        for a model with outcome likelihood features, their min over all its steps.
        """
        device = self.device
        batch = len(rows)
        past = max(row.reuse for row in rows)
        width = max(len(row.ids) - row.reuse for row in rows)
        input_ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((batch, past + width), dtype=torch.long)
        position_ids = torch.zeros((batch, width), dtype=torch.long)
        for i, row in enumerate(rows):
            new = row.ids[row.reuse:]
            input_ids[i, : len(new)] = torch.tensor(new, dtype=torch.long)
            attention_mask[i, past - row.reuse: past + len(new)] = 1
            # Pads stay at position 0: counting on past a row's end could leave a model's
            # position table (a long cached prefix beside a long continuation).
            position_ids[i, : len(new)] = torch.arange(row.reuse, row.reuse + len(new))
            self.forward_tokens += len(new)
        cache = self._batch_cache(rows, past) if past > 0 else None
        use_cache = keep_cache or cache is not None
        if use_cache and cache is None:
            from transformers.cache_utils import DynamicCache

            cache = DynamicCache()
        with torch.no_grad():
            output = self.model(input_ids.to(device), attention_mask=attention_mask.to(device),
                                past_key_values=cache, use_cache=use_cache, position_ids=position_ids.to(device))  # RewardModel's own argument
        probabilities = torch.sigmoid(output.step_logits.float()).cpu()  # [B, T]
        outcome_logits = getattr(output, "outcome_logits", None)
        with_path = getattr(self.model, "outcome_likelihood_head", None) is not None
        layers = self._cache_layers(output.past_key_values) if keep_cache else None
        results = []
        for i, row in enumerate(rows):
            step_scores = [float(probabilities[i, position - row.reuse]) for position in row.new_positions]
            row_cache = None
            if layers is not None:
                start, stop = past - row.reuse, past + len(row.ids) - row.reuse
                row_cache = tuple((keys[i: i + 1, :, start:stop], values[i: i + 1, :, start:stop])
                                  for keys, values in layers)
            outcome, lowest = None, None
            if outcome_logits is not None and row.new_positions:
                end = outcome_logits[i, row.new_positions[-1] - row.reuse][None]  # [1]
                steps = None
                if with_path:
                    # The cached steps enter through their min, kept in the state.
                    new = output.step_features[i, [position - row.reuse for position in row.new_positions]]
                    earlier = row.state.lowest_features
                    steps = (new if earlier is None else torch.cat([earlier[None].to(new.device), new]))[None]
                    lowest = steps[0].min(dim=0).values.cpu()
                with torch.no_grad():
                    logit = self.model.solution_outcome_logits(end, steps) if with_path else end
                outcome = float(torch.sigmoid(logit.float()))
            results.append((step_scores, outcome, row_cache, lowest))
        return results

    def _batch_cache(self, rows: list[_Row], past: int):
        """A DynamicCache holding each row's reused keys/values, left-padded to `past`."""
        from transformers.cache_utils import DynamicCache

        first = rows[0].state.cache
        shared = all(row.state.cache is first and row.reuse == past for row in rows)
        template = next(row.state.cache for row in rows if row.reuse == past)
        layers = []
        for layer, (keys, values) in enumerate(template):
            if shared:
                # One prompt for every row (best-of-N): expand is a view, the cache copies once.
                layers.append((keys[:, :, :past].expand(len(rows), -1, -1, -1),
                               values[:, :, :past].expand(len(rows), -1, -1, -1)))
                continue
            batch_keys = keys.new_zeros((len(rows), keys.shape[1], past, keys.shape[3]))
            batch_values = values.new_zeros((len(rows), values.shape[1], past, values.shape[3]))
            for i, row in enumerate(rows):
                if row.reuse:
                    row_keys, row_values = row.state.cache[layer]
                    batch_keys[i, :, past - row.reuse:] = row_keys[0, :, : row.reuse]
                    batch_values[i, :, past - row.reuse:] = row_values[0, :, : row.reuse]
            layers.append((batch_keys, batch_values))
        return DynamicCache(ddp_cache_data=layers)

    @staticmethod
    def _cache_layers(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if cache is None:
            raise ValueError("the model returned no cache with use_cache=True")
        layers = []
        for layer in cache.layers:
            if getattr(layer, "is_sliding", False):
                raise NotImplementedError("incremental scoring needs full-attention caches (no sliding window)")
            layers.append((layer.keys, layer.values))
        return layers


def _parse_dtype(dtype):
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}; use e.g. float32, bfloat16, float16 or auto")
    return value


def _pick_device(device) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def read_config_dict(name: str) -> dict:
    """The raw config.json of a local directory or hub id (no model code is run)."""
    from transformers import PretrainedConfig

    config, _ = PretrainedConfig.get_config_dict(name)
    return config


def load(path_or_hub_id: str, *, device=None, dtype=None, format: str = "auto", trust_remote_code: bool = False,
         batch_size: int = 16, aggregation: str | None = None, **format_options) -> RewardScorer:
    """A `RewardScorer` for a saved reward model or a published PRM (safetensors only).

    format: "auto" (a "prm" key in config.json = a model of this toolkit; otherwise the
    published format is recognised from the config or the name), "native", or one of
    `prm.published.PUBLISHED_FORMATS`. dtype: a torch dtype or its name ("bfloat16").
    format_options: published-format overrides (e.g. step_tag="ки"); see `prm.published`.
    """
    from prm.modeling import resolve_reward_model
    from prm.published import detect_format, load_published

    name = resolve_reward_model(str(path_or_hub_id))
    chosen = detect_format(str(path_or_hub_id), read_config_dict(name)) if format == "auto" else format
    torch_dtype = _parse_dtype(dtype)
    target = _pick_device(device)
    if chosen == "native":
        if format_options:
            raise TypeError(f"prm.load got unexpected keyword arguments {sorted(format_options)} for a model of this "
                            "toolkit, which takes device, dtype, batch_size, aggregation and trust_remote_code (the "
                            "other keywords are options of published formats: prm.published.load_published)")
        from transformers import AutoTokenizer

        from prm.modeling import RewardModel

        model = RewardModel.from_pretrained(name, dtype=torch_dtype, device=target,
                                            trust_remote_code=trust_remote_code, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
        encoder: StepEncoder = NativeEncoder(tokenizer, model.settings)
    else:
        model, tokenizer, encoder = load_published(name, chosen, dtype=torch_dtype,
                                                   trust_remote_code=trust_remote_code, **format_options)
        model.to(target)
    return RewardScorer(model, tokenizer, encoder, aggregation=aggregation, batch_size=batch_size, format=chosen)
