"""HFPolicy: seeded sampling, step stopping, KV-cache reuse equal to re-encoding, counters,
never reading past the model's positions."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from generation.tiny import build_tiny_causal_lm, train_tokenizer
from generation.policy import HFPolicy, PolicyState, TokenSample
from tasks.math.limits import TooLong
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


@pytest.mark.parametrize("temperature", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("until_step_end", [True, False])
def test_shared_prefixes_sample_what_one_row_per_sample_samples(model, tokenizer, temperature, until_step_end):
    """Samples of a state that drew the same tokens so far run as one row (share_prefixes): the
    same samples, states and caches as one row per sample, on a fraction of the rows when they agree."""
    runs = {}
    for share in (False, True):
        policy = make_policy(model, tokenizer, share_prefixes=share, seed=11, batch_size=64)
        rounds, states = [], policy.start(prefixes())
        for _ in range(3):  # extending the children checks that each one's cache is its own
            groups = policy.expand(states, 6, temperature=temperature, until_step_end=until_step_end)
            rounds.append(groups)
            states = [c.state for group in groups for c in group if not c.finished][:8]
            if not states:
                break
        runs[share] = (rounds, policy.forward_tokens, policy.generated_tokens)
    (plain, plain_forward, plain_generated), (shared, shared_forward, shared_generated) = runs[False], runs[True]
    assert len(plain) == len(shared) >= 2
    for groups_a, groups_b in zip(plain, shared):
        assert [[(c.text, c.token_ids, c.finished) for c in g] for g in groups_a] == \
               [[(c.text, c.token_ids, c.finished) for c in g] for g in groups_b]
        for group_a, group_b in zip(groups_a, groups_b):
            for a, b in zip(group_a, group_b):
                assert a.state.token_ids == b.state.token_ids and a.state.text == b.state.text
                for (keys_a, values_a), (keys_b, values_b) in zip(a.state.cache, b.state.cache):
                    torch.testing.assert_close(keys_a, keys_b, atol=1e-5, rtol=1e-5)
                    torch.testing.assert_close(values_a, values_b, atol=1e-5, rtol=1e-5)
    assert shared_generated == plain_generated
    assert shared_forward <= plain_forward
    if not until_step_end:  # whole solutions: many tokens fed after the prompts
        assert shared_forward < plain_forward
        if temperature == 0.0:  # greedy: the 6 samples of a state are one row throughout
            assert shared_forward * 3 < plain_forward


def test_shared_prefixes_in_ppo_rollouts(model, tokenizer):
    plain = make_policy(model, tokenizer, max_new_tokens=20, temperature=0.3, share_prefixes=False)
    shared = make_policy(model, tokenizer, max_new_tokens=20, temperature=0.3)
    assert shared.sample_tokens(prefixes(), 5) == plain.sample_tokens(prefixes(), 5)
    assert shared.forward_tokens < plain.forward_tokens


def test_tiny_top_p_is_greedy(model, tokenizer):
    greedy = make_policy(model, tokenizer, temperature=0.0).complete(prefixes(), 1, until_step_end=True)
    nucleus = make_policy(model, tokenizer, top_p=1e-6, seed=5).complete(prefixes(), 2, until_step_end=True)
    assert [[g[0], g[0]] for g in greedy] == nucleus


@pytest.mark.parametrize("share_prefixes", [False, True])
def test_counters_add_up(model, tokenizer, share_prefixes):
    policy = make_policy(model, tokenizer, share_prefixes=share_prefixes)
    states = policy.start(prefixes())
    groups = policy.expand(states, 3)
    children = [c for group in groups for c in group]
    prompt_tokens = sum(len(s.token_ids) for s in states)
    generated = sum(len(c.token_ids) for c in children)
    assert policy.generated_tokens == generated
    # Each prompt is encoded once for its 3 samples; a sample's last token waits unencoded.
    if share_prefixes:  # and the samples of a state that sampled the same tokens so far are one row
        distinct = sum(len({tuple(c.token_ids[:j]) for c in group for j in range(1, len(c.token_ids))})
                       for group in groups)
        assert policy.forward_tokens == prompt_tokens + distinct
    else:
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


class PositionLimitedLM(torch.nn.Module):
    """A tiny model with `limit` positions that never samples the separator or EOS (every step
    and solution is cut by a limit) and records the largest position id it is fed. Qwen2 (RoPE)
    reads past its positions silently, GPT-2 (learned positions) raises IndexError."""

    def __init__(self, tokenizer, kind: str, limit: int):
        super().__init__()
        if kind == "qwen2":
            self.inner = build_tiny_causal_lm(tokenizer, "tiny", seed=0, max_positions=limit)
        else:
            from transformers import GPT2Config, GPT2LMHeadModel

            torch.manual_seed(0)
            self.inner = GPT2LMHeadModel(GPT2Config(
                vocab_size=len(tokenizer), n_positions=limit, n_embd=32, n_layer=2, n_head=2,
                eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id))
        self.config = self.inner.config  # so that HFPolicy finds the positions
        self.bias = torch.zeros(self.inner.config.vocab_size)
        self.bias[[tokenizer.encode("\n")[0], tokenizer.eos_token_id]] = -1e9
        self.max_position = -1

    def forward(self, **kwargs):
        self.max_position = max(self.max_position, int(kwargs["position_ids"].max()))
        output = self.inner(**kwargs)
        output.logits = output.logits + self.bias
        return output


POSITION_KINDS = ["qwen2", "gpt2"]


@pytest.mark.parametrize("kind", POSITION_KINDS)
def test_a_step_cut_at_the_position_limit_is_finished_and_nothing_is_read_past_it(tokenizer, kind):
    lengths = [len(tokenizer.encode(prefix)) for prefix in prefixes()]  # 17, 20, 52
    limit = max(lengths) + 5
    model = PositionLimitedLM(tokenizer, kind, limit)
    policy = make_policy(model, tokenizer, max_step_tokens=16)
    separator = policy.separator_ids
    states = policy.start(prefixes())
    cut_by_limit = cut_by_step_limit = 0
    for _ in range(6):
        live = [state for state in states if not state.finished]
        if not live:
            break
        groups = policy.expand(live, 2)
        assert model.max_position < limit
        states = []
        for parent, group in zip(live, groups):
            assert len(group) == 2
            for child in group:
                if len(parent.token_ids) + 16 + len(separator) > limit:
                    # Cut where the sequence reaches the positions: finished, no separator past them.
                    assert len(child.token_ids) == min(16, limit - len(parent.token_ids))
                    assert child.finished and child.state.finished
                    assert child.state.token_ids == parent.token_ids + child.token_ids
                    assert len(child.state.token_ids) <= limit
                    assert child.state.text == parent.text + child.text
                    cut_by_limit += 1
                else:
                    # Cut at max_step_tokens with room left: closed by the separator, as before.
                    assert len(child.token_ids) == 16 and not child.finished and not child.state.finished
                    assert child.state.token_ids == parent.token_ids + child.token_ids + separator
                    assert child.state.text == parent.text + child.text + "\n"
                    cut_by_step_limit += 1
                states.append(child.state)
    assert not [state for state in states if not state.finished]
    assert cut_by_limit >= 6 and cut_by_step_limit >= 4
    # Finished states are not extended (and never read past the positions).
    assert policy.expand(states, 1) == [[] for _ in states]
    assert model.max_position < limit


@pytest.mark.parametrize("kind", POSITION_KINDS)
def test_a_step_limit_that_meets_the_position_limit(tokenizer, kind):
    long, short = prefixes()[2], prefixes()[0]
    length = len(tokenizer.encode(long))
    # The step limit reaches the last position: the separator would not fit, so the step is finished.
    model = PositionLimitedLM(tokenizer, kind, length + 4)
    policy = make_policy(model, tokenizer, max_step_tokens=4)
    (child,), = policy.expand(policy.start([long]), 1)
    assert len(child.token_ids) == 4 and child.finished and len(child.state.token_ids) == length + 4
    assert model.max_position < length + 4
    # One position more: the separator fits and fills the positions, so the step is closed and
    # finished (it was left open, and the next expand gave k empty "finished" steps that beam
    # search scored as steps). A full state built by hand still gets empty, finished
    # continuations while a state with room in the same batch samples on, and the full state's
    # padding is never fed past the positions.
    limit = length + 5
    model = PositionLimitedLM(tokenizer, kind, limit)
    policy = make_policy(model, tokenizer, max_step_tokens=4)
    (child,), = policy.expand(policy.start([long]), 1)
    assert child.finished and child.state.finished
    assert child.state.token_ids[-len(policy.separator_ids):] == policy.separator_ids
    assert len(child.state.token_ids) == limit
    full_state = dataclasses.replace(child.state, finished=False)
    full, roomy = policy.expand([full_state] + policy.start([short]), 2)
    assert [(c.text, c.token_ids, c.finished) for c in full] == [("", [], True)] * 2
    assert all(len(c.token_ids) == 4 and not c.finished for c in roomy)
    assert model.max_position < limit


@pytest.mark.parametrize("kind", POSITION_KINDS)
def test_whole_solutions_stop_at_the_position_limit(tokenizer, kind):
    long, short = prefixes()[2], prefixes()[0]
    length = len(tokenizer.encode(long))
    limit = length + 6
    model = PositionLimitedLM(tokenizer, kind, limit)
    policy = make_policy(model, tokenizer, max_new_tokens=40)
    samples = policy.sample_tokens([long, short], 2)
    # Cut where the sequence reaches the positions (not EOS, so not finished) or at max_new_tokens.
    assert [len(s.completion_ids) for s in samples] == [6, 6, 40, 40]
    assert not any(s.finished for s in samples)
    assert [len(texts) for texts in policy.complete([long, short], 2)] == [2, 2]
    assert model.max_position < limit
    # A whole solution kept with its cache fills the positions: next it gets an empty, finished
    # continuation, and its padding is never fed past the positions while the other row samples.
    (child,), = policy.expand(policy.start([long]), 1, until_step_end=False)
    assert len(child.state.token_ids) == limit and not child.finished
    full, roomy = policy.expand([child.state] + policy.start([short]), 1, until_step_end=False)
    assert [(c.text, c.token_ids, c.finished) for c in full] == [("", [], True)]
    assert len(roomy[0].token_ids) == 40
    assert model.max_position < limit
    # A state longer than the positions (built by hand) is refused, not read past them.
    with pytest.raises(TooLong):
        policy.expand([PolicyState(token_ids=child.state.token_ids + [5], text=long)], 1)
    assert model.max_position < limit


class FixedLM(torch.nn.Module):
    """A tiny model whose next-token distribution is always `probs` (token id -> probability)."""

    def __init__(self, model, probs: dict[int, float]):
        super().__init__()
        self.inner = model
        self.logits = torch.full((model.config.vocab_size,), -1e4)
        for token, p in probs.items():
            self.logits[token] = float(torch.tensor(p).log())

    def forward(self, **kwargs):
        output = self.inner(**kwargs)
        output.logits = self.logits.expand_as(output.logits).clone()
        return output


def test_top_p_treats_tokens_of_equal_probability_alike(tokenizer):
    # A dominant token and four tied ones: top_p 0.5 is reached inside the tie, and which of the
    # tied tokens made the cut depended on the sort's order (bf16 logits tie often). All four are
    # kept, each as likely as the others.
    tied, dominant = [10, 11, 12, 13], 14
    model = FixedLM(build_tiny_causal_lm(tokenizer, "tiny", seed=0), {dominant: 0.4, **{t: 0.15 for t in tied}})
    policy = make_policy(model, tokenizer, top_p=0.5, max_new_tokens=1, seed=0)
    (group,) = policy.expand(policy.start(prefixes()[:1]), 4000, until_step_end=False, keep_cache=False)
    counts = torch.bincount(torch.tensor([child.token_ids[0] for child in group]), minlength=15)
    assert counts.sum() == counts[[dominant, *tied]].sum()
    # Kept mass 1.0: the dominant token 0.4, each tied one 0.15 (binomial sd about 23 of 4000).
    assert abs(int(counts[dominant]) - 1600) < 120
    for token in tied:
        assert abs(int(counts[token]) - 600) < 100, counts[tied].tolist()
