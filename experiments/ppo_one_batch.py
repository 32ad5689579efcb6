"""Can a policy-gradient step move the demo policy towards correct answers at all? One batch,
exact advantages, several optimizers: the diagnosis behind the demo's PPO settings (docs/ppo.md).

    python experiments/ppo_one_batch.py                      # 64 training problems x 8 samples
    python experiments/ppo_one_batch.py --problems 32 --steps 4
    python experiments/ppo_one_batch.py --policy runs/base-policy   # another SFT policy

From the shipped SFT policy (prm/assets/demo/policy, or --policy): sample `samples` solutions per problem at
T = 0.7, give each the GRPO advantage of the verifier's outcome within its problem's group, take
`steps` gradient steps of the plain policy-gradient loss -A * log p (no clipping, no KL: the most
the batch can teach), then report per setting: the change of the summed log-probability of the
positive- and the negative-advantage samples, the accuracy of fresh samples on the *same*
problems (it should rise if the step points the right way) and greedy accuracy on problems the
batch did not contain. Training problems only: no held-out problem is touched.
"""

from __future__ import annotations

import copy
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@dataclass
class OneBatchArgs:
    problems: int = field(default=64, metadata={"help": "training problems in the batch"})
    samples: int = field(default=8, metadata={"help": "samples per problem (the GRPO group)"})
    steps: int = field(default=8, metadata={"help": "gradient steps on the batch"})
    other_problems: int = field(default=128, metadata={"help": "training problems outside the batch, for greedy accuracy"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature (the demo's PPO rollouts)"})
    seed: int = field(default=1, metadata={"help": "sampling seed of the batch (fresh samples use seed + 1)"})
    policy: str | None = field(default=None, metadata={"help": "SFT policy to probe (a path; default the shipped prm/assets/demo/policy)"})


SETTINGS = {  # name -> (optimizer, lr, which advantages, which weights are trained)
    "adam lr 1e-5": ("adam", 1e-5, "grpo", "all"),
    "adam lr 3e-5": ("adam", 3e-5, "grpo", "all"),
    "adam lr 1e-4": ("adam", 1e-4, "grpo", "all"),
    "sgd lr 0.1": ("sgd", 0.1, "grpo", "all"),
    "adam lr 3e-5, positive advantages only": ("adam", 3e-5, "positive", "all"),
    "adam lr 1e-4, positive advantages only": ("adam", 1e-4, "positive", "all"),
    "adam lr 1e-4, embeddings + last layer + LM head only": ("adam", 1e-4, "grpo", "last"),
}


def trained_weights(model, which: str) -> list:
    """All weights, or ("last") the embeddings, the last decoder layer and the LM head."""
    if which == "all":
        return list(model.parameters())
    last = f"layers.{model.config.num_hidden_layers - 1}."
    return [weight for name, weight in model.named_parameters()
            if "embed" in name or "lm_head" in name or last in name]


def main(argv: list[str] | None = None) -> dict:
    import torch
    from transformers import HfArgumentParser

    from commands.demo import ASSETS, DemoConfig, make_problems
    from generation.loading import load_policy
    from generation.policy import HFPolicy
    from prm.ppo.losses import token_logprobs
    from prm.ppo.model import PolicyWithValue, ResponseBatch
    from prm.sft import heldout_accuracy
    from tasks.math.prompts import policy_prompt
    from verifiers import is_correct

    (args,) = HfArgumentParser(OneBatchArgs).parse_args_into_dataclasses(args=argv)
    policy_dir = args.policy or str(ASSETS / "policy")
    base, tokenizer = load_policy(policy_dir)
    train, _ = make_problems(DemoConfig())
    batch_problems = train[: args.problems]
    other = train[len(train) // 2: len(train) // 2 + args.other_problems]

    def sample(model, seed: int):
        policy = HFPolicy(model, tokenizer, temperature=args.temperature, max_new_tokens=64, seed=seed,
                          batch_size=args.problems * args.samples)
        samples = policy.sample_tokens([policy_prompt(p.question) for p in batch_problems], args.samples)
        answers = [p.answer for p in batch_problems for _ in range(args.samples)]
        return samples, torch.tensor([float(is_correct(a, s.text)) for a, s in zip(answers, samples)])

    samples, correct = sample(base, args.seed)
    batch = ResponseBatch.from_ids([list(s.prompt_ids) for s in samples], [list(s.completion_ids) for s in samples],
                                   tokenizer.pad_token_id)
    groups = correct.view(args.problems, args.samples)
    grpo = ((groups - groups.mean(1, keepdim=True)) / (groups.std(1, keepdim=True) + 1e-4)).view(-1)
    start_other = heldout_accuracy(base, tokenizer, other, temperature=0.0, max_new_tokens=64)
    print(f"batch: {len(samples)} samples, accuracy {correct.mean():.3f}; greedy accuracy on {len(other)} "
          f"other training problems {start_other:.3f}")
    print("| setting | Δ log p, A > 0 | Δ log p, A < 0 | same problems, fresh samples | other problems, greedy |")
    print("|---|---|---|---|---|")
    rows = {}
    for name, (optimizer_name, lr, kind, which) in SETTINGS.items():
        model = copy.deepcopy(base)
        actor = PolicyWithValue(model).eval()
        advantages = grpo.clamp(min=0) if kind == "positive" else grpo
        weights = trained_weights(model, which)
        optimizer = (torch.optim.AdamW(weights, lr=lr, weight_decay=0.0) if optimizer_name == "adam"
                     else torch.optim.SGD(weights, lr=lr))

        def summed_logprobs():
            with torch.no_grad():
                logits, _ = actor(batch)
                return (token_logprobs(logits / args.temperature, batch.response_ids) * batch.response_mask).sum(1)

        before = summed_logprobs()
        for _ in range(args.steps):
            logits, _ = actor(batch)
            logprobs = token_logprobs(logits / args.temperature, batch.response_ids)
            loss = -(advantages[:, None] * logprobs * batch.response_mask).sum() / batch.response_mask.sum()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(weights, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        change = summed_logprobs() - before
        _, fresh = sample(model, args.seed + 1)
        other_accuracy = heldout_accuracy(model, tokenizer, other, temperature=0.0, max_new_tokens=64)
        rows[name] = {"positive": change[grpo > 0].mean().item(), "negative": change[grpo < 0].mean().item(),
                      "same": fresh.mean().item(), "other": other_accuracy}
        row = rows[name]
        print(f"| {name} | {row['positive']:+.2f} | {row['negative']:+.2f} | {row['same']:.3f} | {row['other']:.3f} |",
              flush=True)
    return {"policy": policy_dir, "batch_accuracy": correct.mean().item(), "other_start": start_other, "settings": rows}


if __name__ == "__main__":
    main()
