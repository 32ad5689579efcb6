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

A saved model is an ordinary Hugging Face directory: the backbone through
``save_pretrained`` (safetensors), the heads in ``reward_heads.safetensors``, the
`RewardSettings` under the key ``"prm"`` of ``config.json``; the tokenizer is saved beside it
by the training recipe.

LoRA (peft) adapts the backbone while the heads stay fully trainable. Saving merges the
adapter into the backbone weights, so a saved model is self-contained and loads without peft;
`merge_lora()` merges in place (the training recipe calls it once training is over so that
saving needs no copy).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

HEADS_FILE = "reward_heads.safetensors"
SETTINGS_KEY = "prm"
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
    """

    step_logits: torch.Tensor
    outcome_logits: torch.Tensor | None = None
    past_key_values: Any = None


def _single_token_id(tokenizer, token: str) -> int:
    ids = tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"the plus_minus head needs {token!r} to be one token; the tokenizer gives {ids}")
    return ids[0]


def _new_linear(hidden_size: int, out_features: int, std: float) -> nn.Linear:
    layer = nn.Linear(hidden_size, out_features)
    nn.init.normal_(layer.weight, std=std)
    nn.init.zeros_(layer.bias)
    return layer


class RewardModel(nn.Module):
    """A backbone plus a step head and/or an outcome head; see the module docstring."""

    def __init__(self, backbone: nn.Module, settings: RewardSettings):
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
        self.outcome_head = _new_linear(hidden_size, 1, std).to(dtype) if settings.has_outcome_head else None
        if settings.needs_lm_head:
            if self._hf_model().get_output_embeddings() is None:
                raise ValueError("the plus_minus head needs a backbone with an LM head (AutoModelForCausalLM)")
            if settings.plus_token_id is None or settings.minus_token_id is None:
                raise ValueError("plus_token_id / minus_token_id are unset: build with from_backbone(..., tokenizer=...)")

    # ----------------------------------------------------------------------------- building
    @classmethod
    def from_backbone(cls, name_or_path_or_model, settings: RewardSettings | None = None, *, tokenizer=None,
                      dtype=None, trust_remote_code: bool = False, **kwargs) -> RewardModel:
        """A reward model with freshly initialised heads on a pretrained (or in-memory) backbone.

        `name_or_path_or_model` is a hub id, a local directory, or a transformers model object
        (a causal LM object is accepted for every head; its LM head is dropped unless the
        "plus_minus" head needs it). `tokenizer` resolves the "+"/"-" token ids of that head;
        when omitted it is loaded from the name.
        """
        settings = copy.deepcopy(settings) if settings is not None else RewardSettings()
        if isinstance(name_or_path_or_model, (str, Path)):
            from transformers import AutoModel, AutoModelForCausalLM

            from generation.hub import resolve_model

            name = resolve_model(str(name_or_path_or_model))
            auto = AutoModelForCausalLM if settings.needs_lm_head else AutoModel
            backbone = auto.from_pretrained(name, dtype=dtype, trust_remote_code=trust_remote_code, **kwargs)
            if tokenizer is None and settings.needs_lm_head:
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
        else:
            backbone = name_or_path_or_model
            if not settings.needs_lm_head and backbone.get_output_embeddings() is not None:
                backbone = backbone.base_model
        if settings.needs_lm_head and (settings.plus_token_id is None or settings.minus_token_id is None):
            if tokenizer is None:
                raise ValueError("the plus_minus head needs a tokenizer to find the '+' / '-' token ids")
            settings.plus_token_id = _single_token_id(tokenizer, settings.plus_token)
            settings.minus_token_id = _single_token_id(tokenizer, settings.minus_token)
        return cls(backbone, settings)

    @classmethod
    def from_pretrained(cls, path, *, dtype=None, device=None, trust_remote_code: bool = False,
                        **kwargs) -> RewardModel:
        """Load a directory written by `save_pretrained` (local path, or hub id via `resolve_model`)."""
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

        from generation.hub import resolve_model

        name = resolve_model(str(path))
        config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
        stored = getattr(config, SETTINGS_KEY, None)
        if not isinstance(stored, dict):
            raise ValueError(f"{name}: config.json has no {SETTINGS_KEY!r} settings; not a reward model of this toolkit")
        settings = RewardSettings.from_dict(stored)
        auto = AutoModelForCausalLM if settings.needs_lm_head else AutoModel
        backbone = auto.from_pretrained(name, dtype=dtype, trust_remote_code=trust_remote_code, **kwargs)
        model = cls(backbone, settings)
        heads_path = Path(name) / HEADS_FILE
        if not heads_path.exists():
            from huggingface_hub import hf_hub_download

            heads_path = Path(hf_hub_download(name, HEADS_FILE))
        state = load_file(str(heads_path))
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [key for key in missing if not key.startswith("backbone.")]
        if missing or unexpected:
            raise ValueError(f"{heads_path}: head weights do not match the settings (missing {missing}, unexpected {unexpected})")
        if device is not None:
            model.to(device)
        model.eval()
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

    # ----------------------------------------------------------------------------- saving
    def save_pretrained(self, path) -> Path:
        """Write an ordinary HF directory: backbone (safetensors), heads, settings in config.json.

        A model with an active LoRA adapter is saved merged (from a merged copy; call
        `merge_lora()` first to avoid the copy on large models).
        """
        from safetensors.torch import save_file

        if self.has_lora:
            merged = copy.deepcopy(self)
            merged.merge_lora()
            return merged.save_pretrained(path)
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        backbone = self._hf_model()
        setattr(backbone.config, SETTINGS_KEY, self.settings.to_dict())
        backbone.save_pretrained(path, safe_serialization=True)
        heads = {name: tensor.detach().contiguous().cpu() for name, tensor in self.state_dict().items()
                 if not name.startswith("backbone.")}
        save_file(heads, str(path / HEADS_FILE), metadata={"format": "pt"})
        return path

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
                position_ids: torch.Tensor | None = None) -> RewardOutput:
        """input_ids [B, T] -> RewardOutput (step_logits [B, T], outcome_logits [B, T] | None)."""
        model = self._hf_model()
        decoder = model.base_model if self.settings.needs_lm_head else model
        hidden_out = decoder(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                             past_key_values=past_key_values, use_cache=use_cache)
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
        return RewardOutput(step_logits=step_logits, outcome_logits=outcome_logits,
                            past_key_values=getattr(hidden_out, "past_key_values", None) if use_cache else None)
