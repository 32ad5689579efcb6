"""A vLLM policy behind the same interface as `HFPolicy` (GPU only; untested here).

    pip install "prm-toolkit[vllm]"
    policy = VLLMPolicy("Qwen/Qwen2.5-Math-1.5B-Instruct", temperature=0.8, seed=0)
    policy.complete([policy_prompt(question)], n=16)                 # best-of-N samples
    beam_search(question, policy, prm.load("runs/prm"), BeamConfig())  # start / expand

vLLM keeps no per-sequence cache object; instead its automatic prefix caching (on by
default here) finds a beam's prefix in its KV cache, so each round's prompt is not
re-encoded on the GPU. `forward_tokens` therefore counts prompt tokens *submitted* (an
upper bound on tokens run); `generated_tokens` is exact. The continuation, seeding and
chat-template rules are those of `HFPolicy`, and so are the prompt ids: vLLM gets token ids, not
text, because it would tokenize a text with the tokenizer's special tokens, and a chat template
that writes its own BOS (Llama 3's "<|begin_of_text|>") would then reach the model after a second
one. This module imports vllm only when a `VLLMPolicy` is built; tests/test_vllm_policy.py runs it
against a fake engine (no GPU in CI).
"""

from __future__ import annotations

from collections.abc import Sequence

from generation.policy import Continuation, PolicyState, prompt_ids, render_prompt
from tasks.math.prompts import STEP_SEPARATOR


class VLLMPolicy:
    """`Policy` over a `vllm.LLM`; `llm_kwargs` go to `vllm.LLM` (tensor_parallel_size, ...)."""

    def __init__(self, name_or_path: str, *, temperature: float = 0.7, top_p: float = 1.0,
                 max_new_tokens: int = 256, max_step_tokens: int = 64, seed: int = 0,
                 separator: str = STEP_SEPARATOR, use_chat_template: bool | str = "auto",
                 trust_remote_code: bool = False, **llm_kwargs):
        try:
            import vllm
        except ImportError as error:
            raise ImportError(
                "VLLMPolicy needs vLLM and a CUDA GPU: pip install 'prm-toolkit[vllm]'. "
                "On CPU use generation.policy.HFPolicy, which has the same interface."
            ) from error
        from generation.hub import resolve_model

        self._vllm = vllm
        llm_kwargs.setdefault("enable_prefix_caching", True)
        self.llm = vllm.LLM(resolve_model(name_or_path), seed=seed, trust_remote_code=trust_remote_code,
                            **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.temperature, self.top_p = temperature, top_p
        self.max_new_tokens, self.max_step_tokens = max_new_tokens, max_step_tokens
        self.separator = separator
        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        self.use_chat_template = has_template if use_chat_template == "auto" else bool(use_chat_template)
        self.forward_tokens = self.generated_tokens = self.padding_tokens = 0
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart the random stream: request i of the next calls samples with seed + i."""
        self.seed, self._requests = seed, 0

    def render(self, prefix: str) -> str:
        return render_prompt(self.tokenizer, prefix, self.use_chat_template)

    def start(self, prefixes: Sequence[str]) -> list[PolicyState]:
        return [PolicyState(token_ids=[], text=prefix) for prefix in prefixes]

    def expand(self, states: Sequence[PolicyState], k: int, *, temperature: float | None = None,
               until_step_end: bool = True, max_tokens: int | None = None,
               keep_cache: bool = True) -> list[list[Continuation]]:
        """k continuations of each unfinished state (finished states get none)."""
        temperature = self.temperature if temperature is None else temperature
        if max_tokens is None:
            max_tokens = self.max_step_tokens if until_step_end else self.max_new_tokens
        todo = [index for index, state in enumerate(states) if not state.finished]
        prompts = [{"prompt_token_ids": prompt_ids(self.tokenizer, states[index].text, self.use_chat_template)}
                   for index in todo]
        params = [
            self._vllm.SamplingParams(
                n=k, temperature=temperature, top_p=self.top_p if temperature > 0 else 1.0, max_tokens=max_tokens,
                seed=self.seed + self._requests + offset, stop=[self.separator] if until_step_end else None,
            )
            for offset in range(len(todo))
        ]
        self._requests += len(todo)
        outputs = self.llm.generate(prompts, params, use_tqdm=False) if todo else []
        results: list[list[Continuation]] = [[] for _ in states]
        for index, output in zip(todo, outputs):
            self.forward_tokens += len(output.prompt_token_ids)
            group = []
            for sample in output.outputs:
                self.generated_tokens += len(sample.token_ids)
                # vLLM reports a matched stop string in stop_reason; EOS leaves it None.
                ended_by_eos = sample.finish_reason == "stop" and sample.stop_reason is None
                text = sample.text
                suffix = self.separator if until_step_end and not ended_by_eos else ""
                state = PolicyState(token_ids=[], text=states[index].text + text + suffix, finished=ended_by_eos)
                group.append(Continuation(text=text, token_ids=list(sample.token_ids), finished=ended_by_eos,
                                          state=state if keep_cache else None))
            results[index] = group
        return results

    def complete(self, prefixes: list[str], n: int, *, until_step_end: bool = False) -> list[list[str]]:
        """`Policy.complete`: n sampled continuations for each prefix."""
        groups = self.expand(self.start(prefixes), n, until_step_end=until_step_end, keep_cache=False)
        return [[child.text for child in group] for group in groups]
