"""HFPolicy: seeded sampling, step stopping, KV-cache reuse equal to re-encoding, counters."""

from __future__ import annotations

import pytest
import torch

from generation.tiny import build_tiny_causal_lm, train_tokenizer
from generation.policy import HFPolicy, PolicyState, TokenSample
from tasks.math.prompts import policy_prompt
from tasks.math.protocols import Policy

TEXTS = [
    f"Question: Tom has {a} apples and buys {b} more.\nSolution:\n{a} + {b} = {a + b}\nThe answer is {a + b}\n"
    for a in range(12) for b in range(12)
]
QUESTIONS = ["Tom has 3 apples and buys 4 more.", "What is 12 + 30?", "A longer question: 5 boxes of 7 pens, how many pens?"]


class BiasedLM(torch.nn.Module):
    """A random tiny LM whose logits favour the step separator and EOS, so that random
    samples do end steps and solutions within a few tokens."""

    def __init__(self, model, boosts: dict[int, float]):
        super().__init__()
        self.inner = model
        self.bias = torch.zeros(model.config.vocab_size)
        for token, boost in boosts.items():
            self.bias[token] = boost

    def forward(self, **kwargs):
        output = self.inner(**kwargs)
        output.logits = output.logits + self.bias
        return output


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS, vocab_size=300)


@pytest.fixture(scope="module")
def model(tokenizer):
    separator = tokenizer.encode("\n")[0]
    return BiasedLM(build_tiny_causal_lm(tokenizer, "tiny", seed=0), {separator: 4.0, tokenizer.eos_token_id: 3.0})


def make_policy(model, tokenizer, **kwargs) -> HFPolicy:
    options = dict(temperature=1.0, seed=0, max_step_tokens=16, max_new_tokens=40)
    options.update(kwargs)
    return HFPolicy(model, tokenizer, **options)


def prefixes() -> list[str]:
    return [policy_prompt(question) for question in QUESTIONS]


def test_policy_protocol_and_seeded_reproducibility(model, tokenizer):
    first = make_policy(model, tokenizer, seed=7)
    assert isinstance(first, Policy)
    a = first.complete(prefixes(), 3)
    b = make_policy(model, tokenizer, seed=7).complete(prefixes(), 3)
    c = make_policy(model, tokenizer, seed=8).complete(prefixes(), 3)
    assert a == b
    assert a != c
    assert [len(group) for group in a] == [3, 3, 3]
    first.reseed(7)
    assert first.complete(prefixes(), 3) == a


def test_next_step_stops_at_separator(model, tokenizer):
    policy = make_policy(model, tokenizer, max_step_tokens=30)
    states = policy.start(prefixes())
    groups = policy.expand(states, 4)
    ended_at_separator = 0
    for state, group in zip(states, groups):
        for child in group:
            assert "\n" not in child.text
            if child.finished:
                assert child.token_ids[-1] == tokenizer.eos_token_id
                continue
            ended_at_separator += "\n" in tokenizer.decode(child.token_ids)
            # The extended state is the prefix, the step and one separator, token for token.
            assert child.state.text == state.text + child.text + "\n"
            assert tokenizer.decode(child.state.token_ids) == state.text + child.text + "\n"
    assert ended_at_separator > 0


def test_kv_reuse_gives_the_same_logits_and_samples_as_re_encoding(model, tokenizer):
    policy = make_policy(model, tokenizer)
    # Two rounds of steps, so states differ in cached and pending lengths within a batch.
    children = [c.state for group in policy.expand(policy.start(prefixes()), 2) for c in group if not c.finished]
    children = [c.state for group in policy.expand(children, 1) for c in group if not c.finished]
    assert len(children) >= 3 and len({s.n_cached for s in children}) > 1
    fresh = [PolicyState(token_ids=list(s.token_ids), text=s.text) for s in children]
    with torch.no_grad():
        cached_logits = policy._prefill(children).logits
        fresh_logits = policy._prefill(fresh).logits
        alone = torch.stack([model(input_ids=torch.tensor([s.token_ids])).logits[0, -1] for s in children])
    torch.testing.assert_close(cached_logits, fresh_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(cached_logits, alone.float(), atol=1e-4, rtol=1e-4)

    for temperature in (0.0, 1.0):
        policy.reseed(3)
        reused = policy.expand(children, 2, temperature=temperature)
        policy.reseed(3)
        re_encoded = policy.expand(fresh, 2, temperature=temperature)
        assert [[c.token_ids for c in g] for g in reused] == [[c.token_ids for c in g] for g in re_encoded]


def test_tiny_top_p_is_greedy(model, tokenizer):
    greedy = make_policy(model, tokenizer, temperature=0.0).complete(prefixes(), 1, until_step_end=True)
    nucleus = make_policy(model, tokenizer, top_p=1e-6, seed=5).complete(prefixes(), 2, until_step_end=True)
    assert [[g[0], g[0]] for g in greedy] == nucleus


def test_counters_add_up(model, tokenizer):
    policy = make_policy(model, tokenizer)
    states = policy.start(prefixes())
    groups = policy.expand(states, 3)
    children = [c for group in groups for c in group]
    prompt_tokens = sum(len(s.token_ids) for s in states)
    generated = sum(len(c.token_ids) for c in children)
    assert policy.generated_tokens == generated
    # Each prompt is encoded once for its 3 samples; a sample's last token waits unencoded.
    assert policy.forward_tokens == prompt_tokens + generated - len(children)
    for state, group in zip(states, groups):
        for child in group:
            if child.state is not None and not child.finished:
                assert child.state.n_cached == len(state.token_ids) + len(child.token_ids) - 1
    before = policy.forward_tokens
    live = [c.state for c in children if not c.finished]
    policy.expand(live, 1)
    assert policy.forward_tokens - before >= sum(len(s.pending_ids) for s in live)


def test_sample_tokens_for_ppo(model, tokenizer):
    policy = make_policy(model, tokenizer, max_new_tokens=20)
    model.train()
    samples = policy.sample_tokens(prefixes()[:2], 3)
    assert model.training  # restored after sampling
    assert len(samples) == 6 and all(isinstance(s, TokenSample) for s in samples)
    for index, sample in enumerate(samples):
        assert sample.prompt_ids == tokenizer.encode(prefixes()[index // 3])
        assert 1 <= len(sample.completion_ids) <= 20
        assert sample.finished == (sample.completion_ids[-1] == tokenizer.eos_token_id)
        assert sample.text == tokenizer.decode(sample.completion_ids, skip_special_tokens=True)
    assert any(s.finished for s in samples)
    assert make_policy(model, tokenizer, max_new_tokens=20).sample_tokens(prefixes()[:2], 3) == samples


def test_chat_template_renders_policy_prompts(model, tokenizer):
    chat_tokenizer = train_tokenizer(TEXTS, vocab_size=300)
    chat_tokenizer.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    policy = make_policy(model, chat_tokenizer)
    assert policy.use_chat_template
    rendered = policy.render(policy_prompt("What is 2 + 2?") + "2 + 2 = 4\n")
    assert rendered.startswith("<system>") and "<user>What is 2 + 2?\n<assistant>2 + 2 = 4\n" in rendered
    assert policy.render("free text") == "free text"
    assert not make_policy(model, chat_tokenizer, use_chat_template=False).use_chat_template
    assert not make_policy(model, tokenizer).use_chat_template


def test_from_pretrained_round_trip(tokenizer, tmp_path):
    plain = build_tiny_causal_lm(tokenizer, "tiny", seed=1)
    plain.save_pretrained(tmp_path, safe_serialization=True)
    tokenizer.save_pretrained(tmp_path)
    loaded = HFPolicy.from_pretrained(str(tmp_path), device="cpu", seed=2, temperature=1.0, max_step_tokens=8)
    here = HFPolicy(plain, tokenizer, seed=2, temperature=1.0, max_step_tokens=8)
    assert loaded.complete(prefixes(), 2, until_step_end=True) == here.complete(prefixes(), 2, until_step_end=True)
