"""`VLLMPolicy` feeds vLLM the same prompt ids as `HFPolicy`: vLLM needs a GPU, so a fake `vllm`
module stands in. Its engine tokenizes a text prompt as vLLM does (`tokenizer.encode(text)`, special
tokens added) and records the ids each request reaches the model with."""

import sys
import types

import pytest
from tokenizers import processors

from generation.policy import HFPolicy
from generation.tiny import build_tiny_causal_lm, train_tokenizer
from tasks.math.prompts import policy_prompt

TEXTS = ["Question: What is 2 + 3?\nSolution:\n2 + 3 = 5\nThe answer is 5\n", "Tom has 12 apples and buys 7."] * 20
LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ message['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def bos_tokenizer(chat_template: str | None):
    """A tokenizer that adds a BOS to every text, as Llama's does; with Llama 3's chat template,
    which writes the BOS itself."""
    tokenizer = train_tokenizer(TEXTS, vocab_size=300)
    tokenizer.add_tokens(["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
                         special_tokens=True)
    tokenizer.bos_token = "<|begin_of_text|>"
    bos = tokenizer.bos_token_id
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos)])
    tokenizer.chat_template = chat_template
    return tokenizer


class FakeLLM:
    """`vllm.LLM`: every request returns n copies of one step, "2 + 3 = 5", stopped at the separator."""

    tokenizer = None

    def __init__(self, path, **kwargs):
        self.requests = []  # the prompt ids of each request, as the model reads them

    def get_tokenizer(self):
        return self.tokenizer

    def generate(self, prompts, params, use_tqdm=True):
        outputs = []
        for prompt, param in zip(prompts, params):
            # vLLM tokenizes a text prompt with the tokenizer's special tokens and takes ids as they are.
            ids = self.tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt["prompt_token_ids"])
            self.requests.append(ids)
            step = self.tokenizer.encode("2 + 3 = 5\n", add_special_tokens=False)
            sample = types.SimpleNamespace(text="2 + 3 = 5", token_ids=step, finish_reason="stop", stop_reason="\n")
            outputs.append(types.SimpleNamespace(prompt_token_ids=ids, outputs=[sample] * param.n))
        return outputs


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM = FakeLLM
    module.SamplingParams = lambda **kwargs: types.SimpleNamespace(**kwargs)
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


@pytest.mark.parametrize("chat_template", [LLAMA3, None], ids=["chat-template", "plain"])
def test_the_model_reads_one_bos_and_the_ids_hf_policy_reads(fake_vllm, monkeypatch, tmp_path, chat_template):
    from generation.vllm_policy import VLLMPolicy

    tokenizer = bos_tokenizer(chat_template)
    monkeypatch.setattr(FakeLLM, "tokenizer", tokenizer)
    policy = VLLMPolicy(str(tmp_path))
    assert policy.use_chat_template == (chat_template is not None)
    hf = HFPolicy(build_tiny_causal_lm(tokenizer, seed=0), tokenizer)
    prefixes = [policy_prompt("What is 2 + 3?"), policy_prompt("Tom has 12 apples and buys 7.")]

    children = policy.expand(policy.start(prefixes), 2)
    assert policy.llm.requests == [state.token_ids for state in hf.start(prefixes)]
    # A beam's next round: its text re-encoded, still with one BOS, at the start.
    policy.expand([children[0][0].state], 1)
    for ids in policy.llm.requests:
        assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    assert policy.forward_tokens == sum(len(ids) for ids in policy.llm.requests)
    assert policy.complete(prefixes, 3) == [["2 + 3 = 5"] * 3] * 2


def test_an_empty_prefix_is_refused_as_hf_policy_refuses_it(fake_vllm, monkeypatch, tmp_path):
    from generation.vllm_policy import VLLMPolicy

    # A tokenizer that adds no BOS: "" is then no tokens at all, which vLLM cannot condition on.
    monkeypatch.setattr(FakeLLM, "tokenizer", train_tokenizer(TEXTS, vocab_size=300))
    policy = VLLMPolicy(str(tmp_path))
    with pytest.raises(ValueError, match="empty prefix"):
        policy.complete([""], 1)
