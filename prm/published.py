"""Published PRMs behind the same `score_steps`: each model's own input layout and head,
loaded into `prm.modeling.RewardModel` without running code from the hub.

========================  =======================================  ======================================
format                    hub id (GPU users)                       how a step is scored
========================  =======================================  ======================================
``qwen-prm``              ``Qwen/Qwen2.5-Math-PRM-7B`` (and -72B)  chat template (system, user = question,
                                                                   assistant = steps each followed by
                                                                   ``<extra_0>``); 2-class head
                                                                   Linear-ReLU-Linear; P(class 1) at
                                                                   each ``<extra_0>``
``math-shepherd``         ``peiyi9979/math-shepherd-mistral-7b-prm``  ``"{question} {step} ки\\n{step} ки"``;
                                                                   softmax over the LM logits of "+" and
                                                                   "-" at each ``ки``, P("+")
``rlhflow``               ``RLHFlow/Llama3.1-8B-PRM-Deepseek-Data``  one user turn per step (the first is
                                                                   "{question} {step}"), each answered
                                                                   "+"; P("+") vs "-" predicted just
                                                                   before each assistant "+"
========================  =======================================  ======================================

Each encoder tokenizes the whole text as the model card's code does and finds the reading
positions in it, so `score_steps` gives the model card's numbers in one forward pass (the
RLHFlow card runs one forward pass per step prefix; a causal model gives the same scores).
The Qwen checkpoint's head (``score.0`` / ``score.2``) is mapped onto the RewardModel step
head; its backbone loads as a plain ``Qwen2Model``, so ``trust_remote_code`` is never needed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from prm.encoding import EncodedSteps

PUBLISHED_FORMATS = ("qwen-prm", "math-shepherd", "rlhflow")
FORMATS = ("native",) + PUBLISHED_FORMATS
HUB_IDS = {
    "qwen-prm": "Qwen/Qwen2.5-Math-PRM-7B",
    "math-shepherd": "peiyi9979/math-shepherd-mistral-7b-prm",
    "rlhflow": "RLHFlow/Llama3.1-8B-PRM-Deepseek-Data",
}
QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
QWEN_STEP_TOKEN = "<extra_0>"
SHEPHERD_TAG = "ки"

# Stands for text inside a chat template so the template's rendering can be cut around it.
_MARKER = "PRMTOOLKITMARKER7f3a"


def detect_format(name: str, config: dict) -> str:
    """The format of a model from its raw config.json (and, for the LM-head PRMs, its name)."""
    if "prm" in config:
        return "native"
    if "Qwen2ForProcessRewardModel" in (config.get("architectures") or []):
        return "qwen-prm"
    # A local directory is judged by its own name, a hub id by "owner/name"; a name is trusted
    # only for a causal LM (these PRMs read the LM head's "+"/"-" logits) named a PRM: Math-Shepherd's
    # PPO policy and RLHFlow's ORMs, preference models and policies are not.
    lowered = (Path(name).name if Path(name).is_dir() else name).lower()
    architectures = config.get("architectures") or []
    causal = not architectures or any(a.endswith("ForCausalLM") for a in architectures)
    says_prm = causal and "prm" in lowered.rsplit("/", 1)[-1]  # the model's name, not its owner's
    if says_prm and ("math-shepherd" in lowered or "math_shepherd" in lowered):
        return "math-shepherd"
    if says_prm and "rlhflow" in lowered:
        return "rlhflow"
    raise ValueError(
        f"{name}: cannot tell the reward-model format (no 'prm' settings in config.json, no known "
        f"architecture or name); pass format= one of {FORMATS}"
    )


def _template_prefix(tokenizer, messages: list[dict], **kwargs) -> str:
    """The rendered chat text before the last message's content (given as the marker)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)
    if _MARKER not in text:
        raise ValueError("the chat template drops message content; cannot locate the steps")
    return text[: text.index(_MARKER)]


class QwenPRMEncoder:
    """Qwen2.5-Math-PRM: system + user question + assistant "step<extra_0>step<extra_0>"."""

    separator = "\n\n"  # the model card's recommended step separation

    def __init__(self, tokenizer, system: str = QWEN_SYSTEM, step_token: str = QWEN_STEP_TOKEN):
        self.tokenizer = tokenizer
        self.system = system
        self.step_token = step_token
        # The card's encode(step_token)[0] is the BOS on a tokenizer that adds one.
        ids = tokenizer.encode(step_token, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"the step token {step_token!r} is not one token on this tokenizer: {ids}")
        self.step_token_id = ids[0]

    def encode(self, prompt: str, steps: Sequence[str]) -> EncodedSteps:
        messages = [{"role": "system", "content": self.system}, {"role": "user", "content": prompt}]
        if steps:
            answer = self.step_token.join(steps) + self.step_token
            text = self.tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": answer}],
                                                      tokenize=False, add_generation_prompt=False)
        else:
            text = _template_prefix(self.tokenizer, messages + [{"role": "assistant", "content": _MARKER}])
        ids = self.tokenizer.encode(text)
        return EncodedSteps(ids, [i for i, token in enumerate(ids) if token == self.step_token_id])


class ShepherdEncoder:
    """Math-Shepherd: "{question} {step_1} ки\\n{step_2} ки...", read at each tag token."""

    separator = "\n"

    def __init__(self, tokenizer, step_tag: str = SHEPHERD_TAG):
        self.tokenizer = tokenizer
        self.step_tag = step_tag
        self.step_tag_id = tokenizer.encode(step_tag, add_special_tokens=False)[-1]

    def encode(self, prompt: str, steps: Sequence[str]) -> EncodedSteps:
        # Steps from Math-Shepherd data may still carry their tag; it is written once either way.
        tagged = [f"{step.rstrip().removesuffix(self.step_tag).rstrip()} {self.step_tag}" for step in steps]
        text = f"{prompt} " + "\n".join(tagged) if steps else prompt
        ids = self.tokenizer.encode(text)
        return EncodedSteps(ids, [i for i, token in enumerate(ids) if token == self.step_tag_id])


class RLHFlowEncoder:
    """RLHFlow: one user turn per step, each answered "+"; read where "+" is predicted."""

    separator = "\n"

    def __init__(self, tokenizer, plus_token_id: int, plus_token: str = "+"):
        self.tokenizer = tokenizer
        self.plus_token = plus_token
        self.plus_token_id = plus_token_id

    def _conversation(self, prompt: str, steps: Sequence[str]) -> list[dict]:
        turns = []
        for index, step in enumerate(steps):
            turns.append({"role": "user", "content": f"{prompt} {step}" if index == 0 else step})
            turns.append({"role": "assistant", "content": self.plus_token})
        return turns

    def encode(self, prompt: str, steps: Sequence[str]) -> EncodedSteps:
        tokenizer = self.tokenizer
        if not steps:
            text = _template_prefix(tokenizer, [{"role": "user", "content": _MARKER}]) + prompt
            return EncodedSteps(tokenizer(text, add_special_tokens=False)["input_ids"], [])
        turns = self._conversation(prompt, steps)
        text = tokenizer.apply_chat_template(turns, tokenize=False)
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = encoding["input_ids"], encoding["offset_mapping"]
        token_at = {start: index for index, (start, end) in enumerate(offsets) if end > start}
        positions = []
        for turn in range(len(steps)):
            # Where the k-th assistant "+" starts: the length of the conversation rendered up to
            # the k-th user turn with the assistant header (the card's prompt for that step).
            head = tokenizer.apply_chat_template(turns[: 2 * turn + 1], tokenize=False, add_generation_prompt=True)
            index = token_at.get(len(head))
            if not text.startswith(head) or index is None or ids[index] != self.plus_token_id or index == 0:
                raise ValueError("the chat template or tokenizer does not put the assistant '+' in a token of its own")
            positions.append(index - 1)
        return EncodedSteps(ids, positions)


def _spaced_token(tokenizer, label: str, before: str) -> int:
    """The id of `label` as the one token that follows `before` and a space."""
    head = tokenizer.encode(before, add_special_tokens=False)
    ids = tokenizer.encode(f"{before} {label}", add_special_tokens=False)
    if len(ids) != len(head) + 1 or ids[: len(head)] != head:
        raise ValueError(f"the math-shepherd label {label!r} is not one token after a space on this tokenizer: "
                         f"{before + ' ' + label!r} encodes as {ids}, {before!r} as {head}")
    return ids[-1]


def _token_pair(tokenizer, plus: str, minus: str, *, spaced: bool) -> tuple[int, int]:
    """The (+, -) token ids as the model cards pick them."""
    if spaced:
        # Math-Shepherd's card takes encode("+ -")[1:], written for Mistral's SentencePiece, where
        # both come out as "▁+" / "▁-". A label stands where the tag stood, after " ", so each is
        # taken in that spaced form: the card's ids on SentencePiece, "Ġ+" / "Ġ-" (not "+" / "Ġ-")
        # on byte-level BPE.
        return _spaced_token(tokenizer, plus, before=minus), _spaced_token(tokenizer, minus, before=plus)
    return tokenizer.encode(plus, add_special_tokens=False)[-1], tokenizer.encode(minus, add_special_tokens=False)[-1]


def _qwen_head_weights(name: str) -> dict:
    """The `score.*` tensors of a Qwen2ForProcessRewardModel checkpoint (local dir or hub id)."""
    from safetensors import safe_open
    from transformers.utils import cached_file

    index_file = cached_file(name, "model.safetensors.index.json", _raise_exceptions_for_missing_entries=False)
    if index_file is not None:
        with open(index_file, encoding="utf-8") as handle:
            weight_map = json.load(handle)["weight_map"]
        files = sorted({file for key, file in weight_map.items() if key.startswith("score.")})
    else:
        files = ["model.safetensors"]
    tensors = {}
    for file in files:
        path = cached_file(name, file)
        with safe_open(path, framework="pt") as handle:
            for key in handle.keys():
                if key.startswith("score."):
                    tensors[key] = handle.get_tensor(key)
    return tensors


def load_published(name: str, format: str, *, dtype=None, trust_remote_code: bool = False, aggregation: str = "min",
                   **options):
    """(RewardModel, tokenizer, encoder) for a published PRM in `format`.

    options: qwen-prm: system=, step_token=; math-shepherd: step_tag=, plus_token=, minus_token=;
    rlhflow: plus_token=, minus_token=.
    """
    from torch import nn
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    from prm.modeling import RewardModel, RewardSettings

    if format not in PUBLISHED_FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {FORMATS}")
    tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    if format == "qwen-prm":
        unknown = set(options) - {"system", "step_token"}
        if unknown:
            raise TypeError(f"unknown options for qwen-prm: {sorted(unknown)}")
        # The checkpoint's auto_map points at remote code; its backbone is a plain Qwen2Model.
        backbone, loading = AutoModel.from_pretrained(name, dtype=dtype, trust_remote_code=False, use_safetensors=True,
                                                      output_loading_info=True)
        if loading.get("missing_keys"):
            missing = sorted(loading["missing_keys"])
            raise ValueError(f"{name}: the checkpoint lacks backbone weights {', '.join(missing[:3])}"
                             f"{' ...' if len(missing) > 3 else ''}; they would be random")
        settings = RewardSettings(separator=QwenPRMEncoder.separator, head="classification", num_labels=2,
                                  aggregation=aggregation, format=format)
        model = RewardModel(backbone, settings)
        hidden = backbone.config.hidden_size
        model.step_head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2))
        weights = {key.replace("score.", "", 1): value for key, value in _qwen_head_weights(name).items()}
        model.step_head.load_state_dict(weights)  # strict: a missing head is an error
        model.step_head.to(next(backbone.parameters()).dtype)
        return model.train(False), tokenizer, QwenPRMEncoder(tokenizer, **options)

    plus, minus = options.pop("plus_token", "+"), options.pop("minus_token", "-")
    step_tag = options.pop("step_tag", SHEPHERD_TAG) if format == "math-shepherd" else None
    if options:
        raise TypeError(f"unknown options for {format}: {sorted(options)}")
    plus_id, minus_id = _token_pair(tokenizer, plus, minus, spaced=format == "math-shepherd")
    causal_lm, loading = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, trust_remote_code=trust_remote_code,
                                                              use_safetensors=True, output_loading_info=True)
    if loading.get("missing_keys"):
        # transformers fills missing weights with random ones: the "+"/"-" logits would be noise.
        missing = sorted(loading["missing_keys"])
        raise ValueError(f"{name}: {format} reads a causal LM's '+'/'-' logits, but the checkpoint lacks "
                         f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} (not such a model?)")
    settings = RewardSettings(separator="\n", head="plus_minus", plus_token=plus, minus_token=minus,
                              plus_token_id=plus_id, minus_token_id=minus_id, aggregation=aggregation, format=format)
    model = RewardModel.from_backbone(causal_lm, settings)
    if format == "math-shepherd":
        encoder = ShepherdEncoder(tokenizer, step_tag)
    else:
        encoder = RLHFlowEncoder(tokenizer, plus_id, plus)
    return model.train(False), tokenizer, encoder
