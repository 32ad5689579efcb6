"""Published PRM formats: tiny random models saved as each publisher ships them, scored by
`prm.load(...).score_steps` and by a literal re-implementation of each model card's snippet."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM
from transformers.models.qwen2.modeling_qwen2 import Qwen2Model, Qwen2PreTrainedModel

import prm
from prm.published import detect_format
from generation.tiny import build_tiny_causal_lm, tiny_config, train_tokenizer

QUESTION = "Janet has 16 eggs and eats 3. She sells the rest for $2 each. How much does she make?"
STEPS = [
    "Step 1: She has 16 - 3 = 13 eggs left.",
    "Step 2: She makes 13 * 2 = 26 dollars.",
    "Step 3: The answer is: 26",
]
WRONG_STEPS = ["Step 1: She has 16 - 3 = 12 eggs left.", "Step 2: The answer is: 24"]
TEXTS = [QUESTION + " " + " ки\n".join(STEPS) + " ки + - +", "Step 4: 7 * 8 = 56 ки - +"] * 10


def _spread_weights(model, seed):
    """Random weights large enough that step scores differ visibly (default init gives ~0.5)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" not in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return model


def _check_spread(scores):
    flat = [s for row in scores for s in row]
    assert max(flat) - min(flat) > 0.02, "scores too uniform for the comparison to mean anything"


# ---------------------------------------------------------------------------------- Qwen2.5-Math-PRM
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class Qwen2ForProcessRewardModel(Qwen2PreTrainedModel):
    """What `trust_remote_code=True` loads for Qwen/Qwen2.5-Math-PRM-7B: Qwen2Model + 2-class MLP."""

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = 2
        self.model = Qwen2Model(config)
        self.score = nn.Sequential(nn.Linear(config.hidden_size, config.hidden_size), nn.ReLU(),
                                   nn.Linear(config.hidden_size, self.num_labels))
        self.post_init()

    def forward(self, input_ids, attention_mask=None):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return (self.score(hidden),)


def make_step_rewards(logits, token_masks):
    """The model card's helper, as published."""
    probabilities = F.softmax(logits, dim=-1)
    probabilities = probabilities * token_masks.unsqueeze(-1)
    all_scores_res = []
    for i in range(probabilities.size(0)):
        sample = probabilities[i]
        positive_probs = sample[sample != 0].view(-1, 2)[:, 1]
        all_scores_res.append(positive_probs.cpu().tolist())
    return all_scores_res


def qwen_card_scores(model, tokenizer, question, steps):
    """The Qwen2.5-Math-PRM model card's quick start."""
    data = {"system": "Please reason step by step, and put your final answer within \\boxed{}.",
            "query": question, "response": steps}
    messages = [
        {"role": "system", "content": data["system"]},
        {"role": "user", "content": data["query"]},
        {"role": "assistant", "content": "<extra_0>".join(data["response"]) + "<extra_0>"},
    ]
    conversation_str = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    input_ids = tokenizer.encode(conversation_str, return_tensors="pt")
    outputs = model(input_ids=input_ids)
    step_sep_id = tokenizer.encode("<extra_0>")[0]
    token_masks = input_ids == step_sep_id
    return make_step_rewards(outputs[0], token_masks)[0]


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    tokenizer = train_tokenizer(TEXTS, vocab_size=300)
    tokenizer.add_tokens(["<|im_start|>", "<|im_end|>", "<extra_0>"], special_tokens=True)
    tokenizer.chat_template = CHATML
    config = tiny_config(tokenizer)
    config.architectures = ["Qwen2ForProcessRewardModel"]
    config.auto_map = {"AutoModel": "modeling_qwen2_rm.Qwen2ForProcessRewardModel"}
    torch.manual_seed(0)
    model = _spread_weights(Qwen2ForProcessRewardModel(config), seed=1)
    path = tmp_path_factory.mktemp("qwen-prm")
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path, model.eval(), tokenizer


def test_qwen_prm_matches_model_card(qwen_dir):
    path, reference_model, tokenizer = qwen_dir
    scorer = prm.load(str(path), device="cpu")  # trust_remote_code stays off
    assert scorer.format == "qwen-prm"
    ours = [scorer.score_steps(QUESTION, steps) for steps in (STEPS, WRONG_STEPS)]
    with torch.no_grad():
        card = [qwen_card_scores(reference_model, tokenizer, QUESTION, steps) for steps in (STEPS, WRONG_STEPS)]
    _check_spread(card)
    for a, b in zip(ours, card):
        assert a == pytest.approx(b, abs=1e-5)
    assert scorer.score_steps_batch([QUESTION] * 2, [STEPS, WRONG_STEPS]) == [pytest.approx(c, abs=1e-5) for c in card]


# ---------------------------------------------------------------------------------- Math-Shepherd
def shepherd_card_scores(model, tokenizer, question, output):
    """The math-shepherd-mistral-7b-prm model card's snippet."""
    good_token = "+"
    bad_token = "-"
    step_tag = "ки"
    candidate_tokens = tokenizer.encode(f"{good_token} {bad_token}")[1:]
    step_tag_id = tokenizer.encode(f"{step_tag}")[-1]
    input_for_prm = f"{question} {output}"
    input_id = torch.tensor([tokenizer.encode(input_for_prm)])
    logits = model(input_id).logits[:, :, candidate_tokens]
    scores = logits.softmax(dim=-1)[:, :, 0]
    step_scores = scores[input_id == step_tag_id]
    return step_scores.tolist()


def _bos_tokenizer():
    """A tokenizer that adds a BOS to every text, as Mistral's and Llama's do."""
    from tokenizers import processors

    tokenizer = train_tokenizer(TEXTS, vocab_size=300)
    tokenizer.add_tokens(["<s>"], special_tokens=True)
    # Mistral's tokenizer gives the tag the same last token alone and in context; so does this.
    tokenizer.add_tokens(["ки"])
    tokenizer.bos_token = "<s>"
    bos = tokenizer.convert_tokens_to_ids("<s>")
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    return tokenizer


def _sentencepiece_tokenizer():
    """A Mistral-style tokenizer: SentencePiece BPE (spaces live inside tokens as "▁"), BOS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    backend.train_from_iterator(TEXTS, trainers.BpeTrainer(vocab_size=200, special_tokens=["<pad>", "<s>", "</s>"],
                                                           show_progress=False))
    backend.add_tokens(["ки"])
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                           special_tokens=[("<s>", backend.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def _tiny_mistral(tokenizer, seed):
    """A tiny `MistralForCausalLM`: with model_type "mistral", AutoTokenizer reloads the saved
    SentencePiece tokenizer as it is (a "qwen2" config would rebuild it as byte-level)."""
    from transformers import MistralConfig, MistralForCausalLM

    qwen = tiny_config(tokenizer)
    keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "max_position_embeddings", "tie_word_embeddings", "pad_token_id", "eos_token_id")
    torch.manual_seed(seed)
    return MistralForCausalLM(MistralConfig(**{key: getattr(qwen, key) for key in keys},
                                            bos_token_id=tokenizer.bos_token_id))


def _save_causal_lm(path, tokenizer, seed, build=build_tiny_causal_lm):
    model = _spread_weights(build(tokenizer, seed=seed), seed=seed)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return AutoModelForCausalLM.from_pretrained(path).eval()


def test_math_shepherd_matches_model_card(tmp_path):
    # The card's "+"/"-" rule is written for Mistral's SentencePiece tokenizer.
    tokenizer = _sentencepiece_tokenizer()
    assert tokenizer.encode("x")[0] == tokenizer.bos_token_id
    assert tokenizer.convert_ids_to_tokens(tokenizer.encode("+ -")[1:]) == ["▁+", "▁-"]
    path = tmp_path / "math-shepherd-tiny-prm"
    reference_model = _save_causal_lm(path, tokenizer, seed=2, build=_tiny_mistral)
    scorer = prm.load(str(path), device="cpu")  # recognised by its name
    assert scorer.format == "math-shepherd"
    assert [scorer.settings.plus_token_id, scorer.settings.minus_token_id] == tokenizer.encode("+ -")[1:]
    ours, card = [], []
    for steps in (STEPS, WRONG_STEPS):
        ours.append(scorer.score_steps(QUESTION, steps))
        with torch.no_grad():
            card.append(shepherd_card_scores(reference_model, tokenizer, QUESTION, "\n".join(s + " ки" for s in steps)))
    _check_spread(card)
    for a, b in zip(ours, card):
        assert a == pytest.approx(b, abs=1e-5)
    # Steps that still carry their tag (Math-Shepherd data) are tagged once, not twice.
    assert scorer.score_steps(QUESTION, [s + " ки" for s in STEPS]) == pytest.approx(ours[0], abs=1e-6)


def test_math_shepherd_labels_are_both_spaced_on_a_byte_level_tokenizer(tmp_path):
    # Labels stand where the tag stands, after " ": on byte-level BPE the card's encode("+ -")
    # would pair "+" with " -".
    tokenizer = _bos_tokenizer()
    assert tokenizer.convert_ids_to_tokens(tokenizer.encode("+ -")[1:]) == ["+", "Ġ-"]
    path = tmp_path / "math-shepherd-tiny-prm"
    _save_causal_lm(path, tokenizer, seed=2)
    settings = prm.load(str(path), device="cpu").settings
    assert tokenizer.decode([settings.plus_token_id]) == " +"
    assert tokenizer.decode([settings.minus_token_id]) == " -"


def test_math_shepherd_labels_that_are_not_single_tokens_are_refused():
    from prm.published import _token_pair

    tokenizer = _bos_tokenizer()
    assert len(tokenizer.encode(" Janet", add_special_tokens=False)) > 1
    with pytest.raises(ValueError, match=r"math-shepherd label 'Janet' is not one token after a space"):
        _token_pair(tokenizer, "Janet", "-", spaced=True)
    with pytest.raises(ValueError, match=r"math-shepherd label 'Janet' is not one token after a space"):
        _token_pair(tokenizer, "+", "Janet", spaced=True)


# ---------------------------------------------------------------------------------- RLHFlow
LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ message['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def rlhflow_card_scores(model, tokenizer, problem, ans_list):
    """RLHFlow's reference loop: one forward pass per step prefix, read at position -3."""
    plus_tag_id = tokenizer.encode("+")[-1]
    minus_tag_id = tokenizer.encode("-")[-1]
    candidate_tokens = [plus_tag_id, minus_tag_id]
    conversation = []
    step_scores = []
    for k in range(len(ans_list)):
        if k == 0:
            text = problem + " " + ans_list[0]
        else:
            text = ans_list[k]
        conversation.append({"content": text, "role": "user"})
        conversation.append({"content": "+", "role": "assistant"})
        rendered = tokenizer.apply_chat_template(conversation, tokenize=False)
        input_ids = torch.tensor([tokenizer(rendered, add_special_tokens=False)["input_ids"]])
        logits = model(input_ids).logits[:, -3, candidate_tokens]
        scores = logits.softmax(dim=-1)[:, 0]
        step_scores.append(scores[0].item())
    return step_scores


def test_rlhflow_matches_reference_and_runs_once(tmp_path):
    tokenizer = train_tokenizer(TEXTS, vocab_size=300)
    tokenizer.add_tokens(["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
                         special_tokens=True)
    tokenizer.bos_token = "<|begin_of_text|>"
    tokenizer.chat_template = LLAMA3
    path = tmp_path / "tiny-prm"
    reference_model = _save_causal_lm(path, tokenizer, seed=3)
    with pytest.raises(ValueError, match="format"):
        prm.load(str(path), device="cpu")  # no hint in the config or name
    scorer = prm.load(str(path), device="cpu", format="rlhflow")
    ours, card = [], []
    for steps in (STEPS, WRONG_STEPS):
        before = scorer.forward_tokens
        ours.append(scorer.score_steps(QUESTION, steps))
        # One pass over the conversation (the reference runs every prefix again).
        assert scorer.forward_tokens - before <= len(scorer.encoder.encode(QUESTION, steps).input_ids)
        with torch.no_grad():
            card.append(rlhflow_card_scores(reference_model, tokenizer, QUESTION, steps))
    _check_spread(card)
    for a, b in zip(ours, card):
        assert a == pytest.approx(b, abs=1e-5)


def test_published_formats_support_incremental_scoring(qwen_dir):
    path, _, _ = qwen_dir
    scorer = prm.load(str(path), device="cpu")
    state = scorer.start(QUESTION)
    collected = []
    for step in STEPS:
        (score,), (state,) = scorer.extend([state], [step])
        collected.append(score)
    assert collected == pytest.approx(scorer.score_steps(QUESTION, STEPS), abs=1e-5)
    shared = scorer.score_best_of_n(QUESTION, [STEPS, WRONG_STEPS])
    assert shared[1] == pytest.approx(scorer.score_steps(QUESTION, WRONG_STEPS), abs=1e-5)


def test_detect_format_from_config_and_name():
    assert detect_format("out/my-prm", {"prm": {"separator": "\n"}}) == "native"
    assert detect_format("Qwen/Qwen2.5-Math-PRM-7B", {"architectures": ["Qwen2ForProcessRewardModel"]}) == "qwen-prm"
    assert detect_format("peiyi9979/math-shepherd-mistral-7b-prm", {}) == "math-shepherd"
    assert detect_format("RLHFlow/Llama3.1-8B-PRM-Deepseek-Data", {}) == "rlhflow"
    with pytest.raises(ValueError):
        detect_format("some/model", {"architectures": ["LlamaForCausalLM"]})


@pytest.mark.parametrize("name, architectures", [
    ("RLHFlow/ArmoRM-Llama3-8B-v0.1", ["LlamaForRewardModelWithGating"]),
    ("RLHFlow/LLaMA3-iterative-DPO-final", ["LlamaForCausalLM"]),  # a policy, not a PRM
    ("someone/Qwen2-0.5B-math-shepherd-PRM", ["Qwen2ForTokenClassification"]),
])
def test_a_name_alone_does_not_make_a_model_an_lm_head_prm(name, architectures):
    # Any RLHFlow model, or any "math-shepherd" name, was read as an LM-head PRM whatever its
    # architecture; a checkpoint with no LM head then got a random one and plausible scores.
    with pytest.raises(ValueError, match="format="):
        detect_format(name, {"architectures": architectures})
    assert detect_format("RLHFlow/Llama3.1-8B-PRM-Deepseek-Data", {"architectures": ["LlamaForCausalLM"]}) == "rlhflow"


def test_a_checkpoint_without_its_lm_head_is_refused_not_given_a_random_one(tmp_path):
    from transformers import AutoModelForTokenClassification

    tokenizer = _bos_tokenizer()
    config = tiny_config(tokenizer)
    config.num_labels, config.tie_word_embeddings = 2, False
    path = tmp_path / "classifier"
    AutoModelForTokenClassification.from_config(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    with pytest.raises(ValueError, match="lm_head"):
        prm.load(str(path), format="math-shepherd", device="cpu")
    with pytest.raises(TypeError, match="step_tag"):
        prm.load(str(path), format="rlhflow", step_tag="XYZ", device="cpu")


# ---------------------------------------------------------------------------------- review: layouts
def _llama3_tokenizer():
    tokenizer = train_tokenizer(TEXTS, vocab_size=300)
    tokenizer.add_tokens(["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
                         special_tokens=True)
    tokenizer.bos_token = "<|begin_of_text|>"
    tokenizer.chat_template = LLAMA3
    return tokenizer


def test_each_encoder_builds_its_model_cards_text_and_reads_where_the_card_does(qwen_dir):
    from prm.published import QwenPRMEncoder, RLHFlowEncoder, ShepherdEncoder, _token_pair

    steps = ["a = 1", "b\n= 2"]
    _, _, qwen_tokenizer = qwen_dir
    encoded = QwenPRMEncoder(qwen_tokenizer).encode("Q?", steps)
    assert qwen_tokenizer.decode(encoded.input_ids) == (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
        "<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\na = 1<extra_0>b\n= 2<extra_0><|im_end|>\n")
    assert [qwen_tokenizer.decode([encoded.input_ids[i]]) for i in encoded.step_ends] == ["<extra_0>"] * 2

    shepherd_tokenizer = _sentencepiece_tokenizer()
    encoded = ShepherdEncoder(shepherd_tokenizer).encode("Janet?", steps)
    assert encoded.input_ids == shepherd_tokenizer.encode("Janet? a = 1 ки\nb\n= 2 ки")  # BOS first, once
    assert encoded.input_ids[0] == shepherd_tokenizer.bos_token_id and encoded.input_ids.count(encoded.input_ids[0]) == 1
    tag = shepherd_tokenizer.encode("ки")[-1]
    assert [i for i, token in enumerate(encoded.input_ids) if token == tag] == encoded.step_ends

    llama_tokenizer = _llama3_tokenizer()
    plus, _ = _token_pair(llama_tokenizer, "+", "-", spaced=False)
    encoded = RLHFlowEncoder(llama_tokenizer, plus).encode("Q?", steps)
    header = "<|start_header_id|>{}<|end_header_id|>\n\n"
    assert llama_tokenizer.decode(encoded.input_ids) == (
        "<|begin_of_text|>" + header.format("user") + "Q? a = 1<|eot_id|>" + header.format("assistant") + "+<|eot_id|>"
        + header.format("user") + "b\n= 2<|eot_id|>" + header.format("assistant") + "+<|eot_id|>")
    # Read at the token before each assistant "+", which predicts it.
    assert [encoded.input_ids[i + 1] for i in encoded.step_ends] == [plus, plus]
    assert all(llama_tokenizer.decode(encoded.input_ids[: i + 1]).endswith(header.format("assistant"))
               for i in encoded.step_ends)


def test_a_step_holding_the_marker_is_refused(qwen_dir):
    path, _, _ = qwen_dir
    scorer = prm.load(str(path), device="cpu")
    with pytest.raises(ValueError, match="step marker"):
        scorer.score_steps(QUESTION, ["a <extra_0> b", "c"])


def test_qwen_step_token_is_never_the_bos_of_a_tokenizer_that_adds_one():
    # encode("<extra_0>")[0] is the BOS on such a tokenizer: a one-step solution was read at the BOS.
    from prm.published import QwenPRMEncoder

    tokenizer = _bos_tokenizer()
    tokenizer.add_tokens(["<|im_start|>", "<|im_end|>", "<extra_0>"], special_tokens=True)
    tokenizer.chat_template = CHATML
    encoded = QwenPRMEncoder(tokenizer).encode("Q?", ["a = 1"])
    assert [tokenizer.decode([encoded.input_ids[i]]) for i in encoded.step_ends] == ["<extra_0>"]


@pytest.fixture(scope="module")
def lm_head_scorers(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm-head")
    _save_causal_lm(root / "shepherd", _sentencepiece_tokenizer(), seed=2, build=_tiny_mistral)
    _save_causal_lm(root / "rlhflow", _llama3_tokenizer(), seed=3)
    return {"math-shepherd": prm.load(str(root / "shepherd"), format="math-shepherd", device="cpu"),
            "rlhflow": prm.load(str(root / "rlhflow"), format="rlhflow", device="cpu")}


@pytest.mark.parametrize("format", ["math-shepherd", "rlhflow"])
def test_lm_head_formats_score_a_batch_as_one_at_a_time(lm_head_scorers, format):
    scorer = lm_head_scorers[format]
    solutions = [STEPS, WRONG_STEPS, STEPS[:1]]
    alone = [scorer.score_steps(QUESTION, steps) for steps in solutions]
    _check_spread(alone)
    batched = scorer.score_steps_batch([QUESTION] * 3, solutions, batch_size=3)
    for a, b in zip(batched, alone):
        assert a == pytest.approx(b, abs=1e-5)


@pytest.mark.parametrize("format", ["math-shepherd", "rlhflow"])
def test_lm_head_formats_refuse_an_input_beyond_the_positions(lm_head_scorers, format):
    from tasks.math.limits import TooLong

    scorer = lm_head_scorers[format]
    with pytest.raises(TooLong):
        scorer.score_steps(QUESTION, STEPS * 60)


@pytest.mark.parametrize("name", ["peiyi9979/math-shepherd-mistral-7b-rl", "someone/Math-Shepherd-SFT-policy",
                                  "prm-lab/math-shepherd-policy"])
def test_a_math_shepherd_policy_is_not_taken_for_the_prm(name, tmp_path):
    # The Math-Shepherd release has a PPO policy beside the PRM, a causal LM of the same family:
    # read as the PRM, its "+"/"-" logits gave plausible scores.
    with pytest.raises(ValueError, match="format="):
        detect_format(name, {"architectures": ["MistralForCausalLM"]})
    local = tmp_path / name.split("/")[1]
    local.mkdir()
    with pytest.raises(ValueError, match="format="):
        detect_format(str(local), {"architectures": ["MistralForCausalLM"]})
    assert detect_format(str(tmp_path / "x" / "math-shepherd-mistral-7b-prm"), {}) == "math-shepherd"
