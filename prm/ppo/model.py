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
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ResponseBatch:
    """Prompt + response token rows, right-padded, and where each response token sits.

    input_ids, attention_mask: [B, L]; response_ids, response_mask: [B, C];
    logit_positions: [B, C] — column of input_ids whose logits predict response token j
    (prompt length - 1 + j), so per-token tensors live in the compact [B, C] space.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    logit_positions: torch.Tensor

    @classmethod
    def from_ids(cls, prompts: list[list[int]], responses: list[list[int]], pad_id: int) -> "ResponseBatch":
        width = max(len(p) + len(r) for p, r in zip(prompts, responses))
        response_width = max(max(len(r) for r in responses), 1)
        rows = len(prompts)
        input_ids = torch.full((rows, width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((rows, width), dtype=torch.long)
        response_ids = torch.full((rows, response_width), pad_id, dtype=torch.long)
        response_mask = torch.zeros((rows, response_width), dtype=torch.float)
        logit_positions = torch.zeros((rows, response_width), dtype=torch.long)
        for row, (prompt, response) in enumerate(zip(prompts, responses)):
            ids = prompt + response
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
            response_ids[row, : len(response)] = torch.tensor(response, dtype=torch.long)
            response_mask[row, : len(response)] = 1.0
            logit_positions[row] = (len(prompt) - 1 + torch.arange(response_width)).clamp(max=width - 1)
        return cls(input_ids, attention_mask, response_ids, response_mask, logit_positions)

    def select(self, rows: torch.Tensor) -> "ResponseBatch":
        return ResponseBatch(*(getattr(self, name)[rows] for name in self.__dataclass_fields__))

    def to(self, device) -> "ResponseBatch":
        return ResponseBatch(*(getattr(self, name).to(device) for name in self.__dataclass_fields__))


def _at_positions(tensor: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """tensor [B, L, H] rows at positions [B, C] -> [B, C, H]."""
    return tensor.gather(1, positions.unsqueeze(-1).expand(-1, -1, tensor.shape[-1]))


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
        output = self.policy(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                             output_hidden_states=self.critic_backbone is None)
        logits = _at_positions(output.logits, batch.logit_positions)
        if self.critic_backbone is None:
            hidden = output.hidden_states[-1]
        else:
            hidden = self.critic_backbone(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        values = self.value_head(_at_positions(hidden, batch.logit_positions)).squeeze(-1)
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
            output = self.policy(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        return _at_positions(output.logits, batch.logit_positions)
