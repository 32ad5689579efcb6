"""The actor-critic for PPO: a causal-LM policy with a scalar value head, and its frozen
reference for the KL penalty.

The critic is either a linear head on the policy's last hidden state (shared backbone,
one forward for both) or a separate backbone with its own head. The reference is the
policy's starting point: with LoRA the same weights with the adapter switched off (no
second copy in memory), otherwise a frozen copy.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import dataclass, replace

import torch
from torch import nn


@dataclass
class ResponseBatch:
    """Prompt + response sequences laid out for one forward pass, and where the logits that
    predict each response token lie.

    Two layouts (`prm.collate.pack_sequences`): padded, one right-padded row per sequence; or
    shared rows, where the sequences of one prompt (a group's samples) form a prefix tree that
    computes the prompt and each common step prefix once, with a tree attention mask and
    position ids that give every token exactly the context it has in its own sequence.

    input_ids: [R, W]; attention_mask: [R, W] long (padded) or [R, 1, W, W] bool (shared);
    position_ids: [R, W] (shared) or None; response_ids, response_mask: [B, C];
    logit_index: [B, C], index into the flattened [R * W] outputs of the token whose logits
    predict response token j (the token before it in its sequence), so per-token tensors live
    in the compact [B, C] space whatever the layout. prompts, responses, step_ends: the
    sequences, so that `select` can lay out a minibatch of them again.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor | None
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    logit_index: torch.Tensor
    prompts: list[list[int]]
    responses: list[list[int]]
    step_ends: list[list[int]] | None
    pad_id: int
    share_prefixes: bool

    @classmethod
    def from_ids(cls, prompts: list[list[int]], responses: list[list[int]], pad_id: int,
                 step_ends: list[list[int]] | None = None, share_prefixes: bool = False,
                 response_width: int | None = None) -> "ResponseBatch":
        """step_ends[i]: positions in response i of its steps' last tokens, where samples of a
        prompt may part (without them only the prompt is shared). response_width: C (default
        the longest response), kept by `select` so minibatch tensors index like the batch's."""
        from prm.collate import pack_sequences

        ends = step_ends or [[] for _ in responses]
        sequences = [{"input_ids": prompt + response, "prompt_length": len(prompt),
                      "node_ends": [len(prompt) + end for end in node_ends if end < len(response) - 1]}
                     for prompt, response, node_ends in zip(prompts, responses, ends)]
        rows = pack_sequences(sequences, pad_id, solutions_per_row=len(sequences) if share_prefixes else 1)
        width = response_width or max(max(len(r) for r in responses), 1)
        count = len(prompts)
        response_ids = torch.full((count, width), pad_id, dtype=torch.long)
        response_mask = torch.zeros((count, width), dtype=torch.float)
        logit_index = torch.zeros((count, width), dtype=torch.long)
        for row, (prompt, response) in enumerate(zip(prompts, responses)):
            response_ids[row, : len(response)] = torch.tensor(response, dtype=torch.long)
            response_mask[row, : len(response)] = 1.0
            # Response token j is predicted at sequence position len(prompt) - 1 + j.
            logit_index[row, : len(response)] = rows["token_index"][row, len(prompt) - 1: len(prompt) - 1 + len(response)]
        return cls(rows["input_ids"], rows["attention_mask"], rows.get("position_ids"), response_ids, response_mask,
                   logit_index, prompts, responses, step_ends, pad_id, share_prefixes)

    def select(self, rows: torch.Tensor) -> "ResponseBatch":
        """The sequences `rows`, laid out again (a minibatch), on this batch's device."""
        picked = rows.tolist()
        batch = ResponseBatch.from_ids([self.prompts[i] for i in picked], [self.responses[i] for i in picked],
                                       self.pad_id, [self.step_ends[i] for i in picked] if self.step_ends else None,
                                       self.share_prefixes, response_width=self.response_ids.shape[1])
        return batch.to(self.input_ids.device)

    def to(self, device) -> "ResponseBatch":
        tensors = {name: getattr(self, name).to(device) for name in TENSOR_FIELDS if getattr(self, name) is not None}
        return replace(self, **tensors)

    def model_inputs(self, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Keyword arguments of the forward pass; a tree mask goes in additive form, in the
        model's floating-point `dtype` (`prm.collate.additive_mask`)."""
        if self.position_ids is None:
            return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        from prm.collate import additive_mask

        return {"input_ids": self.input_ids, "attention_mask": additive_mask(self.attention_mask, dtype),
                "position_ids": self.position_ids}


TENSOR_FIELDS = ("input_ids", "attention_mask", "position_ids", "response_ids", "response_mask", "logit_index")


def _at_positions(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """tensor [R, W, H] at flat row positions index [B, C] -> [B, C, H]."""
    return tensor.reshape(-1, tensor.shape[-1])[index]


def _float_dtype(module: nn.Module) -> torch.dtype:
    return next(p.dtype for p in module.parameters() if p.is_floating_point())


class PolicyWithValue(nn.Module):
    """Policy (any HF causal LM, optionally a peft model) + value head.

    forward(batch) -> (logits [B, C, V] predicting each response token, values [B, C]).
    """

    def __init__(self, policy: nn.Module, separate_critic: nn.Module | None = None):
        super().__init__()
        self.policy = policy
        self.critic_backbone = separate_critic
        hidden_size = policy.config.hidden_size
        self.value_head = nn.Linear(hidden_size, 1)
        # Start the critic at V = 0 so early advantages are the rewards themselves.
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, batch: ResponseBatch) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = batch.model_inputs(_float_dtype(self.policy))
        output = self.policy(**inputs, output_hidden_states=self.critic_backbone is None)
        logits = _at_positions(output.logits, batch.logit_index)
        if self.critic_backbone is None:
            hidden = output.hidden_states[-1]
        else:
            hidden = self.critic_backbone(**inputs).last_hidden_state
        values = self.value_head(_at_positions(hidden, batch.logit_index)).squeeze(-1)
        return logits, values.float()


class Reference:
    """The frozen starting policy: `logits(batch)` -> [B, C, V] under no_grad.

    With a peft model, the adapter is disabled for the forward (the base weights are the
    reference); otherwise a deep copy is taken once, before training.
    """

    def __init__(self, policy: nn.Module):
        self.uses_adapter = hasattr(policy, "disable_adapter")
        self.policy = policy if self.uses_adapter else copy.deepcopy(policy).eval().requires_grad_(False)

    @torch.no_grad()
    def logits(self, batch: ResponseBatch) -> torch.Tensor:
        context = self.policy.disable_adapter() if self.uses_adapter else nullcontext()
        with context:
            output = self.policy(**batch.model_inputs(_float_dtype(self.policy)))
        return _at_positions(output.logits, batch.logit_index)
