"""A PRM served by vLLM behind the `StepScorer` interface (GPU only; tested here with a fake engine).

    pip install "prm-toolkit[vllm]"
    scorer = VLLMScorer("runs/prm")                          # a PRM trained with `prm train`
    scorer.score_steps(question, ["2 + 3 = 5", "The answer is 5"])
    beam_search(question, VLLMPolicy("runs/sft"), scorer, BeamConfig())

A PRM trained here with the token-classification head is an ordinary
`AutoModelForTokenClassification` checkpoint (`Qwen2ForTokenClassification`, ...), which vLLM runs
as a pooling model: `LLM(path, runner="pooling")` and `LLM.encode(prompts,
pooling_task="token_classify")` return one row of class scores per token (vLLM < 0.10: `task="reward"`,
whose pooler returns every token's output). The prompt and steps are encoded exactly as
`prm.load` encodes them (`prm.encoding.encode_steps`: each piece tokenized on its own, the separator
after every step) and sent as token ids, so each step's score is read at the same separator token
as `prm.load` reads it, and the probabilities agree. All solutions of a call go to vLLM in one
`encode` call; vLLM batches and caches them.

vLLM applies its default activation to token-classification outputs (sigmoid for one label, softmax
for two): `activation="vllm"` reads those as probabilities. An engine configured to return raw
logits (a pooler config without activation) needs `activation="none"`, which applies the sigmoid /
softmax here. Only the step head is served: the "+/-" head (a causal LM) and a joint model's outcome
head are not token-classification outputs; use `prm.load` for those.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prm.encoding import encode_steps
from prm.modeling import HEADS_FILE, RewardSettings, _find_file
from prm.scoring import aggregate


class VLLMScorer:
    """`StepScorer` over a `vllm.LLM` pooling engine; `llm_kwargs` go to `vllm.LLM`
    (tensor_parallel_size, gpu_memory_utilization, ...). `llm`: an engine already made (or a
    stand-in with the same `get_tokenizer` / `encode` methods)."""

    def __init__(self, name_or_path: str | Path, *, llm=None, activation: str = "vllm", aggregation: str | None = None,
                 max_length: int | None = None, trust_remote_code: bool = False, **llm_kwargs):
        from generation.hub import resolve_model
        from prm.scoring import read_config_dict

        if activation not in ("vllm", "none"):
            raise ValueError(f"activation must be 'vllm' (vLLM applied sigmoid/softmax) or 'none' (raw logits), got {activation!r}")
        name = resolve_model(str(name_or_path))
        config = read_config_dict(name)
        if "prm" not in config:
            raise ValueError(f"{name_or_path}: config.json has no 'prm' settings; VLLMScorer serves PRMs trained with "
                             "`prm train` (published PRMs: prm.load)")
        self.settings = RewardSettings.from_dict(config["prm"])
        if self.settings.head != "classification" or not self.settings.has_step_head:
            raise ValueError(f"{name_or_path}: VLLMScorer serves token-classification PRMs (head 'classification', "
                             f"objective prm or joint), not head {self.settings.head!r} / objective "
                             f"{self.settings.objective!r}; use prm.load")
        if self.settings.likelihood_features or self.settings.outcome_likelihood_features:
            raise ValueError(f"{name_or_path}: its step logits add the model's own step likelihoods "
                             "(prm train --likelihood_features), which a vLLM pooling engine does not compute; "
                             "use prm.load")
        if _find_file(name, HEADS_FILE) is not None:
            # vLLM loads the bare backbone without the step head and would pool its hidden states.
            raise ValueError(f"{name_or_path}: an old-layout checkpoint (backbone + {HEADS_FILE}), whose step head "
                             "vLLM does not load; use prm.load")
        if llm is None:
            try:
                import vllm
            except ImportError as error:
                raise ImportError("VLLMScorer needs vLLM and a CUDA GPU: pip install 'prm-toolkit[vllm]'. "
                                  "On CPU use prm.load, which has the same interface.") from error
            try:
                llm = vllm.LLM(name, runner="pooling", trust_remote_code=trust_remote_code, **llm_kwargs)
            except TypeError:  # vLLM < 0.10 names the pooling mode a task
                llm = vllm.LLM(name, task="reward", trust_remote_code=trust_remote_code, **llm_kwargs)
        self.llm = llm
        self.tokenizer = llm.get_tokenizer()
        self.activation = activation
        self.aggregation = aggregation or self.settings.aggregation
        self.max_length = max_length
        self.forward_tokens = 0

    def score_steps(self, prompt: str, steps: Sequence[str]) -> list[float]:
        """`StepScorer.score_steps`: the probability that each step is correct, read at its separator."""
        return self.score_steps_batch([prompt], [steps])[0]

    def score_steps_batch(self, prompts: Sequence[str], steps_lists: Sequence[Sequence[str]]) -> list[list[float]]:
        """`score_steps` for many solutions in one vLLM call; results in input order."""
        if len(prompts) != len(steps_lists):
            raise ValueError(f"{len(prompts)} prompts for {len(steps_lists)} step lists")
        encoded = []
        for prompt, steps in zip(prompts, steps_lists):
            item = encode_steps(self.tokenizer, prompt, list(steps), self.settings, self.max_length)
            if item.n_dropped:
                raise ValueError(f"{item.n_dropped} of {len(steps)} steps end beyond max_length {self.max_length}")
            encoded.append(item)
        todo = [i for i, item in enumerate(encoded) if item.step_ends]
        outputs = self._encode([{"prompt_token_ids": encoded[i].input_ids} for i in todo]) if todo else []
        results: list[list[float]] = [[] for _ in encoded]
        for index, output in zip(todo, outputs):
            item = encoded[index]
            self.forward_tokens += len(item.input_ids)
            rows = _as_tensor(output.outputs.data)  # [T, num_labels] (or [T])
            rows = rows[:, None] if rows.dim() == 1 else rows
            if tuple(rows.shape) != (len(item.input_ids), self.settings.num_labels):
                # Hidden states, another head or rows for part of the prompt: no row is this step's score.
                raise ValueError(f"the engine returned {rows.shape[-1]} values per token for {rows.shape[0]} tokens; "
                                 f"this PRM has {self.settings.num_labels} per token for {len(item.input_ids)} tokens")
            results[index] = [self._probability(rows[end]) for end in item.step_ends]
        return results

    def score(self, prompt: str, completion: str) -> float:
        """`OutcomeScorer.score`: the step scores aggregated (the completion split at the separator)."""
        steps = [step for step in completion.split(self.settings.separator) if step.strip()]
        if not steps:
            raise ValueError("the completion has no non-empty step")
        return self.aggregate(self.score_steps(prompt, steps))

    def aggregate(self, scores: Sequence[float], how: str | None = None) -> float:
        return aggregate(scores, how or self.aggregation)

    def _encode(self, prompts: list[dict]) -> list:
        try:
            return self.llm.encode(prompts, pooling_task="token_classify", use_tqdm=False)
        except TypeError:  # vLLM before pooling tasks: task="reward" returns every token's output
            return self.llm.encode(prompts, use_tqdm=False)

    def _probability(self, row) -> float:
        import torch

        row = row.float().reshape(-1)
        if row.numel() == 1:
            value = row[0] if self.activation == "vllm" else torch.sigmoid(row[0])
        else:
            value = (row if self.activation == "vllm" else torch.softmax(row, -1))[1]
        return float(value)


def _as_tensor(data):
    import torch

    return data if isinstance(data, torch.Tensor) else torch.as_tensor(data)
