"""`prm ppo`: PPO for a math policy with dense per-step rewards from a PRM.

One update reads like the paper (Math-Shepherd's step-by-step PPO, with a KL to the
reference as in Ziegler et al.):

1. roll out: sample responses to a batch of problems (`generation.policy.HFPolicy.sample_tokens`);
2. score: the PRM scores each step, the verifier checks the final answer (optional ORM);
3. rewards: step scores on each step's last token, outcome on the last token, -beta * k1
   on every token (or, with the k2/k3 estimators, no KL in the reward but in the loss);
4. advantages: token-level GAE with the critic (or group baselines, no critic);
5. clipped updates: a few epochs of minibatches of the clipped policy loss (+ beta * KL
   loss with k2/k3), stopped early when the approximate KL passes its target.

Modes: `dense` (PRM steps + outcome), `outcome` (outcome only), `group` (N samples per
prompt, no critic: `--group_advantage` rloo / grpo on each sample's total reward, or
DeepSeekMath's process-supervision grpo_process on its step rewards; the KL is a loss term).

    prm ppo --policy runs/sft --prm runs/prm --mode dense --max_updates 100 --output_dir runs/ppo

Checkpoints (`checkpoints/step-N/` after update N: policy, critic, optimizer, KL coefficient)
are written every `--save_every` updates, every `--save_minutes`, on SIGINT / SIGTERM and at
the end; `--resume` continues to the same result as a run that was never stopped.
"""

from __future__ import annotations

import json
import random
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from prm.collate import tree_mask_unsupported
from prm.ppo.advantages import (
    GROUP_ADVANTAGES,
    gae,
    masked_mean,
    outcome_group_advantages,
    process_group_advantages,
    whiten,
)
from prm.ppo.losses import entropy_from_logits, kl_loss, policy_loss, token_logprobs, value_loss
from prm.ppo.model import PolicyWithValue, Reference, ResponseBatch
from prm.ppo.rewards import (
    KL_ESTIMATORS,
    LOSS_KL_ESTIMATORS,
    STEP_SCORE_FORMS,
    KLController,
    kl_estimate,
    place_rewards,
    separator_token_mask,
    shape_step_scores,
    step_end_positions,
    step_texts,
    token_rewards,
)
from prm.outputs import OutputOptions, Trackers, finish_run, trackers_of
from prm.recipe import (
    SaveClock,
    StopSignals,
    check_output_dir,
    check_resume,
    checkpoint_path,
    checkpoint_to_resume,
    dumps,
    interrupted,
    keep_log_until,
    resume_choice,
    run_fingerprint,
    save_or_stop,
    saved_atomically,
    saved_config,
    write_run_file,
)
from prm.sft import batch_indices, pad_batch, sft_example
from generation.policy import HFPolicy, eos_token_ids, problems_that_fit
from tasks.math.prompts import STEP_SEPARATOR, policy_prompt
from tasks.math.steps import display_math_groups
from tasks.math.records import read_problems, without_overlap
from tasks.math.synthetic import synthetic_preset
from tasks.math.types import Problem

MODES = ("dense", "outcome", "group")
OUTCOME_GATES = ("none", "checker")
CRITICS = ("head", "separate")


@dataclass
class PPOConfig(OutputOptions):
    """Options of `prm ppo` (also the Python API: `train_ppo(PPOConfig(...))`)."""

    policy: str = field(default="runs/sft", metadata={"help": "path or hub id of the starting policy (e.g. the output of prm sft)"})
    prm: str | None = field(default=None, metadata={"help": "PRM for step rewards (path or hub id, loaded with prm.load); needed in dense mode"})
    orm: str | None = field(default=None, metadata={"help": "optional outcome reward model (prm.load(...).score) added at the last token"})
    mode: str = field(default="dense", metadata={"help": "dense (PRM steps + outcome, GAE), outcome (outcome only, GAE) or group (N samples per prompt, --group_advantage, no critic)"})
    data: str = field(default="synthetic:tiny", metadata={"help": "training problems: synthetic:<preset> or a problems JSONL ({question|prompt|problem, answer|reference}, GSM8K, TRL stepwise with a reference)"})
    eval_data: str | None = field(default=None, metadata={"help": "held-out problems JSONL, same fields (default: fresh synthetic problems of the same preset); questions also in training are left out, and counted"})
    n_train: int = field(default=2000, metadata={"help": "number of synthetic training problems"})
    n_eval: int = field(default=200, metadata={"help": "number of held-out problems for accuracy (0 = no evaluation)"})
    eval_every: int = field(default=10, metadata={"help": "held-out accuracy (greedy) every this many updates"})
    # rewards
    step_score_form: str = field(default="centred", metadata={"help": "PRM step reward: raw (p), centred (p - 0.5), diff (p_k - p_{k-1}) or min (worst step only)"})
    step_coef: float = field(default=1.0, metadata={"help": "weight of the PRM step rewards"})
    checker_coef: float = field(default=0.0, metadata={"help": "weight c of the sympy step checker in the step score, (1 - c) * PRM + c * checker (a step: 1 true, 0 false, 0.5 uncheckable); 1 = rule-based dense rewards, no --prm needed"})
    verifier_coef: float = field(default=1.0, metadata={"help": "outcome reward for a correct final answer (verifier), 0 = off"})
    outcome_gate: str = field(default="none", metadata={"help": "none, or checker: the outcome reward is paid only when the sympy checker finds no false step (a right answer reached through a false step earns nothing)"})
    orm_coef: float | None = field(default=None, metadata={"help": "weight of the ORM score at the last token (default: 1.0 with --orm, else 0; 0 with --orm is an error)"})
    reward_whiten: bool = field(default=False, metadata={"help": "divide the placed step/outcome rewards by their std across the batch (no mean shift, signs kept)"})
    reward_clip: float = field(default=0.0, metadata={"help": "clip each placed reward to [-c, c] (0 = off)"})
    kl_coef: float = field(default=0.05, metadata={"help": "initial KL penalty coefficient beta"})
    kl_estimator: str | None = field(default=None, metadata={"help": "KL to the reference: k1 (log p - log q) as the per-token reward penalty -beta * k1 (TRL), or k3 ((r - 1) - log r, r = q/p) / k2 ((log p - log q)^2 / 2) as a loss term beta * mean k added to the policy loss (GRPO, OpenRLHF); default k1, k3 in group mode (which needs k2 or k3)"})
    kl_target: float | None = field(default=None, metadata={"help": "target KL per sequence for the adaptive controller (unset = fixed beta)"})
    kl_horizon: int = field(default=10000, metadata={"help": "horizon of the adaptive KL controller (in sequences)"})
    # optimisation
    gamma: float = field(default=1.0, metadata={"help": "GAE discount"})
    lam: float = field(default=0.95, metadata={"help": "GAE lambda"})
    whiten_advantages: bool = field(default=True, metadata={"help": "dense/outcome modes: whiten the GAE advantages over the batch (group advantages are normalised within their group)"})
    clip_range: float = field(default=0.2, metadata={"help": "policy ratio clip epsilon"})
    value_clip_range: float = field(default=0.2, metadata={"help": "value clip range"})
    vf_coef: float = field(default=0.1, metadata={"help": "value loss weight"})
    ent_coef: float = field(default=0.0, metadata={"help": "entropy bonus weight"})
    target_kl: float = field(default=0.0, metadata={"help": "stop an update's epochs once approx KL passes 1.5x this (0 = off)"})
    critic: str = field(default="head", metadata={"help": "head (value head on the policy backbone) or separate (own backbone)"})
    batch_size: int = field(default=16, metadata={"help": "prompts per update"})
    samples_per_prompt: int = field(default=1, metadata={"help": "responses per prompt (group mode needs >= 2)"})
    group_advantage: str = field(default="rloo", metadata={"help": "group mode: rloo (R_i - mean of the other samples' R_j, every token), grpo ((R_i - group mean) / group std, every token) or grpo_process (DeepSeekMath: step rewards normalised over the group, a token gets the sum from its step on)"})
    group_std: bool = field(default=False, metadata={"help": "group mode, rloo: also divide by the group's std of total rewards (grpo and grpo_process always do)"})
    ppo_epochs: int = field(default=4, metadata={"help": "passes over each rollout batch"})
    n_minibatches: int = field(default=2, metadata={"help": "minibatches per epoch (with --samples_per_prompt > 1 each holds whole groups)"})
    share_prefixes: bool = field(default=True, metadata={"help": "compute the prompt and the common step prefixes of a prompt's samples once in every forward pass (a prefix tree with a tree attention mask: the same log-probs and gradients, fewer tokens; causal decoders with sdpa or eager attention)"})
    lr: float = field(default=1e-4, metadata={"help": "AdamW learning rate"})
    warmup_updates: int = field(default=0, metadata={"help": "raise the learning rate linearly over the first K updates (lr * u / K at update u), then hold it; 0 = constant lr"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping"})
    ptx_coef: float = field(default=0.0, metadata={"help": "weight of a supervised loss on the reference solutions of training problems, added to every minibatch (InstructGPT's PPO-ptx: it holds the policy to what SFT taught on the problems an update does not sample); 0 = off"})
    ptx_batch_size: int = field(default=16, metadata={"help": "reference solutions in each minibatch's --ptx_coef loss"})
    lora_r: int = field(default=0, metadata={"help": "LoRA rank (0 = full fine-tuning); the reference is then the base with the adapter off"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    # generation
    max_new_tokens: int = field(default=64, metadata={"help": "response length limit (tokens)"})
    temperature: float = field(default=1.0, metadata={"help": "rollout sampling temperature T (> 0); PPO's log-probs are log softmax(logits / T)"})
    # run
    max_updates: int = field(default=100, metadata={"help": "PPO updates (rollout + optimisation rounds)"})
    disable_tqdm: bool = field(default=False, metadata={"help": "no progress bar (as transformers' TrainingArguments.disable_tqdm; prm demo's worker processes)"})
    output_dir: str = field(default="runs/ppo", metadata={"help": "metrics.jsonl, checkpoints/ and the final policy go here"})
    save_every: int = field(default=10, metadata={"help": "checkpoint every this many updates (0 = only by --save_minutes and at the end)"})
    save_minutes: float = field(default=10.0, metadata={"help": "also checkpoint when this many minutes passed since the last one (0 = off); SIGINT / SIGTERM always save one"})
    resume: str | None = field(default=None, metadata={"help": "checkpoint directory, or 'latest' (newest under output_dir/checkpoints); it must come from a run with the same settings and data (--max_updates may grow)"})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "start afresh in a non-empty --output_dir (its checkpoints, logs and policy are removed)"})
    seed: int = field(default=0, metadata={"help": "seed for data order, sampling and minibatches"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow custom model code from the hub"})

    def __post_init__(self):
        super().__post_init__()  # --report_to: a missing tracker package fails here
        # Group advantages have no per-token return to carry a reward-side KL, so there the
        # KL is a loss term by default.
        if self.kl_estimator is None:
            self.kl_estimator = "k3" if self.mode == "group" else "k1"
        # --orm alone weighs the ORM like the verifier's outcome reward; an explicit 0 would
        # load a model that never counts, so it is refused rather than ignored.
        if self.orm_coef is None:
            self.orm_coef = 1.0 if self.orm else 0.0
        elif self.orm and self.orm_coef == 0:
            raise ValueError("--orm is given with --orm_coef 0, so the ORM would never count; drop --orm or "
                             "give --orm_coef > 0")
        if self.save_every < 0 or self.save_minutes < 0:
            raise ValueError(f"--save_every and --save_minutes must be >= 0 (0 = off), got {self.save_every} "
                             f"and {self.save_minutes}")
        check_options(self)


def check_options(config: PPOConfig) -> None:
    """Refuse the option values that would only fail (or train nonsense) after the models are
    loaded and a first batch is rolled out and scored: one line naming the option. PPOConfig
    runs this itself, so `prm ppo` refuses before loading a model or writing to --output_dir."""
    if config.mode not in MODES:
        raise ValueError(f"--mode must be one of {MODES}, got {config.mode!r}")
    if config.kl_estimator not in KL_ESTIMATORS:
        raise ValueError(f"--kl_estimator must be one of {KL_ESTIMATORS}, got {config.kl_estimator!r}")
    if config.step_score_form not in STEP_SCORE_FORMS:
        raise ValueError(f"--step_score_form must be one of {STEP_SCORE_FORMS}, got {config.step_score_form!r}")
    if config.critic not in CRITICS:
        raise ValueError(f"--critic must be one of {CRITICS}, got {config.critic!r}")
    if config.outcome_gate not in OUTCOME_GATES:
        raise ValueError(f"--outcome_gate must be one of {OUTCOME_GATES}, got {config.outcome_gate!r}")
    if config.mode == "group" and config.samples_per_prompt < 2:
        raise ValueError("group mode needs --samples_per_prompt >= 2")
    if config.mode == "group" and config.group_advantage not in GROUP_ADVANTAGES:
        raise ValueError(f"--group_advantage must be one of {GROUP_ADVANTAGES}, got {config.group_advantage!r}")
    if config.mode == "group" and config.kl_estimator not in LOSS_KL_ESTIMATORS:
        raise ValueError(f"group mode puts the KL in the loss: use --kl_estimator one of {LOSS_KL_ESTIMATORS}")
    # Counts of things an update is made of; max_new_tokens: every response needs a sampled
    # token to carry its reward.
    for name in ("batch_size", "samples_per_prompt", "ppo_epochs", "n_minibatches", "max_new_tokens", "ptx_batch_size"):
        if getattr(config, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(config, name)}")
    if config.warmup_updates < 0:
        raise ValueError(f"--warmup_updates must be >= 0 (0 = off), got {config.warmup_updates}")
    # Divided by or clipped to (`not > 0` also catches NaN). PPO's ratio needs a sampling
    # distribution, so no temperature 0 (greedy has none).
    for name in ("temperature", "clip_range", "value_clip_range", "max_grad_norm", "kl_horizon"):
        if not getattr(config, name) > 0:
            raise ValueError(f"--{name} must be > 0, got {getattr(config, name)}")
    if config.kl_target is not None and not config.kl_target > 0:
        raise ValueError(f"--kl_target must be > 0 (leave it unset for a fixed beta), got {config.kl_target}")
    for name in ("kl_coef", "reward_clip", "lr", "ptx_coef"):  # 0 is allowed: no KL penalty, no clipping, no step, no ptx
        if not getattr(config, name) >= 0:
            raise ValueError(f"--{name} must be >= 0, got {getattr(config, name)}")
    for name in ("gamma", "lam", "checker_coef"):
        if not 0.0 <= getattr(config, name) <= 1.0:
            raise ValueError(f"--{name} must be in [0, 1], got {getattr(config, name)}")
    # A minibatch holds all the samples of its prompts (`_optimise`), so prompts are what is split.
    if config.batch_size < config.n_minibatches:
        raise ValueError(f"--n_minibatches {config.n_minibatches} is more than the {config.batch_size} prompts of an "
                         "update (--batch_size; a minibatch holds whole groups of --samples_per_prompt)")


# What a fresh run writes into --output_dir (removed by --overwrite_output_dir), and the options
# that do not change the trained policy (a checkpoint may be resumed with other values of these).
# --max_updates is among them: no schedule depends on it, so a finished run can be continued.
RUN_OUTPUTS = ("checkpoints", "metrics.jsonl", "ppo_config.json", "policy", "tensorboard", "README.md")
NOT_IN_FINGERPRINT = ("output_dir", "resume", "overwrite_output_dir", "save_every", "save_minutes", "max_updates",
                      "eval_data", "n_eval", "eval_every", "trust_remote_code", "report_to", "push_to_hub",
                      "hub_model_id", "hub_private_repo", "disable_tqdm")


# --------------------------------------------------------------------------- data


def load_problems(config: PPOConfig) -> tuple[list[Problem], list[Problem]]:
    """(training problems, held-out problems), read by `tasks.math.records.read_problems` (the
    problem files `prm search` reads; steps are not needed). Held-out questions never appear
    in training: overlapping ones are left out, and how many is printed."""
    train = read_problems(config.data, n_synthetic=config.n_train, seed=config.seed)
    if config.n_eval <= 0:
        return train, []
    if config.eval_data:
        heldout = read_problems(config.eval_data, limit=config.n_eval)
    elif synthetic_preset(config.data) is not None:
        heldout = read_problems(config.data, n_synthetic=config.n_eval, seed=config.seed + 2_000_003)
    else:
        return train, []
    return train, without_overlap(heldout, train)


class ReferenceSolutionLoss:
    """PPO-ptx's supervised term (Ouyang et al., 2022): the mean token NLL of reference solutions
    of training problems, as `prm sft` trains them (prompt tokens carry no loss), cut at
    `max_new_tokens` solution tokens like a rollout. Minibatch k draws `batch_size` of them by
    `batch_indices`, so the draw is a function of k alone and a resumed run draws the same."""

    def __init__(self, tokenizer, problems: list[Problem], max_new_tokens: int, batch_size: int, seed: int, source: str):
        solved = [p for p in problems if p.steps]
        if not solved:
            raise ValueError(f"{source}: --ptx_coef needs training problems with reference steps, and none has any")
        if len(solved) < len(problems):
            warnings.warn(f"{source}: {len(problems) - len(solved)} of {len(problems)} training problems have no "
                          "reference steps; --ptx_coef uses the other ones", stacklevel=2)
        self.examples = []
        for problem in solved:
            input_ids, labels = sft_example(tokenizer, problem, max_length=1 << 30)
            prompt_length = labels.count(-100)
            self.examples.append((input_ids[: prompt_length + max_new_tokens], labels[: prompt_length + max_new_tokens]))
        self.pad_id = tokenizer.pad_token_id
        self.batch_size, self.seed = batch_size, seed

    def __call__(self, policy, minibatch: int) -> torch.Tensor:
        """The loss of minibatch `minibatch`'s reference solutions (a scalar, with gradients)."""
        rows = [self.examples[i] for i in batch_indices(minibatch, len(self.examples), self.batch_size, self.seed)]
        batch = {key: value.to(policy.device) for key, value in pad_batch(rows, self.pad_id).items()}
        return policy(**batch).loss


# --------------------------------------------------------------------------- rollout and scoring


@dataclass
class Rollout:
    """Sampled responses and their scores, one entry per response (prompt-major order)."""

    problems: list[Problem]
    prompt_ids: list[list[int]]
    response_ids: list[list[int]]  # EOS included when the response finished
    texts: list[str]
    step_ends: list[list[int]]
    step_scores: list[list[float]]
    correct: list[bool]
    outcome: list[float]


def roll_out(model, tokenizer, problems: list[Problem], config: PPOConfig, seed: int) -> tuple[list[list[int]], list[list[int]], list[str]]:
    """Sample `samples_per_prompt` responses per problem with the search/ policy backend.

    The response ids are exactly the sampled ones (a finished response ends on the EOS
    of the stop set it sampled), so PPO never trains on a token the policy did not draw.
    """
    # A fresh sampler per update, seeded by the update, keeps sampling resumable.
    sampler = HFPolicy(model, tokenizer, temperature=config.temperature, max_new_tokens=config.max_new_tokens,
                       seed=seed, batch_size=max(len(problems) * config.samples_per_prompt, 1))
    samples = sampler.sample_tokens([policy_prompt(p.question) for p in problems], config.samples_per_prompt,
                                    max_new_tokens=config.max_new_tokens)
    prompt_ids, response_ids, texts = [], [], []
    for sample in samples:
        prompt_ids.append(list(sample.prompt_ids))
        response_ids.append(list(sample.completion_ids))
        texts.append(sample.text)
    return prompt_ids, response_ids, texts


def outcome_rewards(problems, steps: list[list[str]], texts: list[str], config: PPOConfig) -> tuple[list[bool], list[float]]:
    """(answer correct, verifier outcome reward) per response. The reward needs a stated answer
    (`is_correct(..., stated=True)`: a response cut off after a computation is not paid for its
    last number); accuracy counts answers as everywhere. With `--outcome_gate checker` a right
    answer whose steps hold a false claim (`verifiers.verify_solution`) earns no reward."""
    from verifiers import is_correct, verify_solution

    correct = [is_correct(p.answer, text) for text, p in zip(texts, problems)]
    paid = [ok and is_correct(p.answer, text, stated=True) for ok, text, p in zip(correct, texts, problems)]
    if config.outcome_gate == "checker":
        paid = [ok and not any(v.ok is False for v in verify_solution(p.question, s).steps)
                for ok, p, s in zip(paid, problems, steps)]
    return correct, [config.verifier_coef * float(ok) for ok in paid]


def score_rollout(problems, prompt_ids, response_ids, texts, tokenizer, is_separator, eos_ids, config: PPOConfig,
                  step_scorer=None, outcome_scorer=None) -> Rollout:
    """PRM step scores (dense and group modes), verifier correctness and outcome rewards.

    `eos_ids`: the sampler's stop set (`generation.policy.eos_token_ids`), so that no step ends
    on the token that stopped a response.
    """
    step_ends, steps = [], []
    for ids in response_ids:
        ends = step_end_positions(ids, is_separator, eos_ids)
        # A line of only spaces is no step: it gets no PRM score.
        kept = [(end, text) for end, text in zip(ends, step_texts(tokenizer, ids, ends, STEP_SEPARATOR)) if text]
        # A display formula over several lines is one step, as `split_steps` reads it.
        groups = display_math_groups([text for _, text in kept])
        step_ends.append([kept[last][0] for _, last in groups])
        steps.append(["\n".join(text for _, text in kept[first:last + 1]) for first, last in groups])
    step_scores: list[list[float]] = [[] for _ in response_ids]
    if config.mode != "outcome" and step_scorer is not None:
        # Responses with no step (EOS straight away) get no PRM call.
        scored = [i for i, s in enumerate(steps) if s]
        questions = [problems[i].question for i in scored]
        if hasattr(step_scorer, "score_steps_batch"):
            results = step_scorer.score_steps_batch(questions, [steps[i] for i in scored])
        else:
            results = [step_scorer.score_steps(q, steps[i]) for q, i in zip(questions, scored)]
        for index, result in zip(scored, results):
            step_scores[index] = list(result)
    correct, outcome = outcome_rewards(problems, steps, texts, config)
    if outcome_scorer is not None and config.orm_coef:
        outcome = [o + config.orm_coef * outcome_scorer.score(p.question, t) for o, p, t in zip(outcome, problems, texts)]
    return Rollout(problems, prompt_ids, response_ids, texts, step_ends, [list(s) for s in step_scores], correct, outcome)


def score_tensor(rollout: Rollout, width: int, config: PPOConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores [2, B, C], placed [2, B, C]): the rewards PPO uses on their tokens (`placed_scores`,
    then `rescaled_scores`), and a mask of where a reward was placed."""
    scores, placed = placed_scores(rollout, width, config)
    return rescaled_scores(scores, placed, config), placed


def placed_scores(rollout: Rollout, width: int, config: PPOConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores [2, B, C], placed [2, B, C]): the task's rewards on their tokens, as the scorers
    gave them times their coefficients (kind 0: each step's reward at its end token, kind 1: the
    outcome on the last token), and masks of where a reward was placed. The kinds are kept apart
    because a truncated response's last step ends on the outcome's token, and process GRPO and
    `--reward_whiten` count each reward as one entry; the per-token reward is `scores.sum(0)`."""
    scores, placed = torch.zeros(2, len(rollout.response_ids), width), torch.zeros(2, len(rollout.response_ids), width)
    rows = zip(rollout.step_ends, rollout.step_scores, rollout.outcome, rollout.response_ids)
    for row, (ends, step_scores, outcome, ids) in enumerate(rows):
        if config.mode != "outcome" and step_scores:
            step_rewards = [config.step_coef * r for r in shape_step_scores(step_scores, config.step_score_form)]
            scores[0, row, : len(ids)] = place_rewards(len(ids), ends, step_rewards, None)
            placed[0, row, ends] = 1.0
        scores[1, row, : len(ids)] = place_rewards(len(ids), [], [], outcome)
        placed[1, row, len(ids) - 1] = 1.0
    return scores, placed


def rescaled_scores(scores: torch.Tensor, placed: torch.Tensor, config: PPOConfig) -> torch.Tensor:
    """`--reward_whiten` (r / std over the batch's placed rewards) then `--reward_clip`, each
    reward on its own: [2, B, C] -> [2, B, C] (`placed_scores`). Whitening's scale changes with
    the batch, so the logged reward is taken before this."""
    if config.reward_whiten:
        scores = whiten(scores, placed, shift_mean=False)
    if config.reward_clip > 0:
        scores = scores.clamp(-config.reward_clip, config.reward_clip) * placed
    return scores


# --------------------------------------------------------------------------- recipe


def build_models(config: PPOConfig):
    """(actor-critic, reference, tokenizer) from the starting policy."""
    from generation.loading import load_policy

    # float32 master weights whatever the checkpoint's dtype (`load_policy`)
    policy, tokenizer = load_policy(config.policy, trust_remote_code=config.trust_remote_code, dtype=torch.float32)
    critic = None
    if config.critic == "separate" and config.mode != "group":  # group mode has no critic to train
        from transformers import AutoModel

        from generation.hub import resolve_model

        critic = AutoModel.from_pretrained(resolve_model(config.policy), trust_remote_code=config.trust_remote_code,
                                           dtype=torch.float32, use_safetensors=True)
    if config.lora_r > 0:
        from peft import LoraConfig, get_peft_model

        policy = get_peft_model(policy, LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, target_modules="all-linear",
                                                   task_type="CAUSAL_LM"))
    reference = Reference(policy)
    return PolicyWithValue(policy, critic), reference, tokenizer


def step_reward_scorer(config: PPOConfig, prm_scorer):
    """The step scorer of the step rewards: the PRM, the sympy checker (`checker_coef` 1), or the
    mix (1 - c) * PRM + c * checker."""
    from search.scorers import VerifierScorer, WeightedScorer

    coef = config.checker_coef  # in [0, 1] (`check_options`)
    if coef == 0.0:
        return prm_scorer
    # Transitions checked, as `--outcome_gate checker` (verify_solution) checks them.
    if coef == 1.0:
        return VerifierScorer(check_transitions=True)
    if prm_scorer is None:
        raise ValueError(f"--checker_coef {coef} mixes the checker with a PRM: pass --prm PATH (or --checker_coef 1)")
    return WeightedScorer([(prm_scorer, 1.0 - coef), (VerifierScorer(check_transitions=True), coef)])


def _check(config: PPOConfig, step_scorer) -> None:
    """What the options alone cannot tell (`check_options` ran when the config was made): whether
    dense mode has a step scorer, which the Python API may pass in."""
    if config.mode == "dense" and step_scorer is None:
        raise ValueError("dense mode needs a PRM: pass --prm PATH (or use --mode outcome)")


def advantages_and_returns(rewards: torch.Tensor, scores: torch.Tensor, placed: torch.Tensor, values: torch.Tensor,
                           mask: torch.Tensor, config: PPOConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Step 4 of an update: (advantages [B, C], returns [B, C] for the critic, None in group mode).

    rewards [B, C]: the per-token rewards (`token_rewards`); scores, placed [2, B, C]: the task's
    rewards by kind and where they were placed (`score_tensor`), which grpo_process normalises
    one by one (in group mode the KL is a loss term, so the rewards are the scores' sum).
    dense/outcome: GAE on the per-token rewards with the critic's values, whitened over the
    batch. group: `group_advantage` over each prompt's `samples_per_prompt` samples, from the
    rewards alone, with no batch whitening: a batch-wide shift would move a group whose samples
    all did equally well.
    """
    if config.mode != "group":
        advantages, returns = gae(rewards, values, mask, config.gamma, config.lam)
        return (whiten(advantages, mask) if config.whiten_advantages else advantages), returns
    if config.group_advantage == "grpo_process":
        return process_group_advantages(scores * mask, placed, mask, config.samples_per_prompt), None
    baseline = "leave_one_out" if config.group_advantage == "rloo" else "mean"
    normalise_std = config.group_std or config.group_advantage == "grpo"
    return outcome_group_advantages(rewards, mask, config.samples_per_prompt, baseline, normalise_std), None


def rollout_logprobs(model: PolicyWithValue, reference: Reference, batch: ResponseBatch, temperature: float
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(old log-probs, old values, reference log-probs), each [B, C], of the sampled tokens.

    Log-probs are log softmax(logits / T), the distribution the rollout sampled from (as in
    TRL and OpenRLHF); `_optimise` reads the new log-probs the same way, so the first ratio is 1.
    """
    with torch.no_grad():
        logits, values = model(batch)
        old_logprobs = token_logprobs(logits / temperature, batch.response_ids)
        ref_logprobs = token_logprobs(reference.logits(batch) / temperature, batch.response_ids)
    return old_logprobs, values, ref_logprobs


def train_ppo(config: PPOConfig, *, step_scorer=None, outcome_scorer=None) -> Path:
    """Run PPO and return the output directory.

    `step_scorer` / `outcome_scorer` (Python API only) replace the models named by
    `config.prm` / `config.orm` with any `StepScorer` / `OutcomeScorer` (a verifier, a mix).
    Writes `metrics.jsonl` (one line per update), `checkpoints/step-N/` and the final policy.

    Dropout is off throughout: the policy (and critic) stay in eval mode for rollouts, old
    log-probs and updates alike (the reference is always in eval mode), so the first ratio
    of every update is exactly 1 (TRL's `disable_dropout` for the same reason; eval mode also
    covers dropout that HF attention applies only when `module.training` is set).
    """
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from tqdm.auto import tqdm

    from prm.sft import heldout_accuracy

    output_dir = Path(config.output_dir)
    check_output_dir(output_dir, overwrite=config.overwrite_output_dir,
                     resuming=resume_choice(config.resume) is not None, written=RUN_OUTPUTS)
    # The models' files too: a resume reloads the reference and the scorers from these paths.
    fingerprint = run_fingerprint(config, ignore=NOT_IN_FINGERPRINT, data_fields=("data",),
                                  model_fields=("policy", "prm", "orm"))
    resume_dir = checkpoint_to_resume(output_dir, config.resume)
    if resume_dir is not None:
        check_resume(resume_dir, fingerprint)

    if step_scorer is None and config.prm and config.mode != "outcome" and config.checker_coef < 1:
        import prm as prm_package

        step_scorer = prm_package.load(config.prm)
    if config.mode != "outcome":
        step_scorer = step_reward_scorer(config, step_scorer)
    _check(config, step_scorer)
    if outcome_scorer is None and config.orm and config.orm_coef:
        import prm as prm_package

        outcome_scorer = prm_package.load(config.orm)

    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)

    train_problems, heldout = load_problems(config)
    model, reference, tokenizer = build_models(config)
    # Rollouts and `heldout_accuracy` render prompts alike (the chat template when the tokenizer
    # has one), as `prm sft` trained them.
    sampler = HFPolicy(model.policy, tokenizer)
    train_problems = problems_that_fit(train_problems, sampler, command="prm ppo", source=config.data, what="training")
    if not train_problems:
        raise ValueError(f"{config.data}: no training problem fits the policy's positions")
    heldout = problems_that_fit(heldout, sampler, command="prm ppo", source=config.eval_data or config.data,
                                what="held-out")
    is_separator = separator_token_mask(tokenizer, STEP_SEPARATOR)
    eos_ids = eos_token_ids(model.policy, tokenizer)
    reference_loss = (ReferenceSolutionLoss(tokenizer, train_problems, config.max_new_tokens, config.ptx_batch_size,
                                            config.seed + 7_000_001, config.data) if config.ptx_coef > 0 else None)
    share_prefixes = config.share_prefixes and config.samples_per_prompt > 1
    reason = tree_mask_unsupported(model.policy) if share_prefixes else None
    if reason:
        share_prefixes = False
        warnings.warn(f"--share_prefixes needs a causal decoder with sdpa or eager attention; {reason}, "
                      "so every response is computed on its own", stacklevel=2)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=0.0)
    kl_controller = KLController(config.kl_coef, config.kl_target, config.kl_horizon)
    start_update = 0
    if resume_dir is not None:
        start_update = _load_checkpoint(resume_dir, model, optimizer, kl_controller)

    # Group mode trains no critic, so the value head gets no gradient, which DDP must be told.
    accelerator = Accelerator(kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)]
                              if config.mode == "group" else None)
    model, optimizer = accelerator.prepare(model, optimizer)
    if not reference.uses_adapter:
        reference.policy.to(accelerator.device)
    unwrapped = accelerator.unwrap_model(model)
    model.eval()  # gradients still flow; dropout stays off (see the docstring)
    output_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = output_dir / "metrics.jsonl"
    if start_update == 0 and accelerator.is_main_process:
        metrics_path.write_text("")
        (output_dir / "ppo_config.json").write_text(json.dumps(saved_config(config), indent=2))
    elif accelerator.is_main_process:
        keep_log_until(metrics_path, start_update, key="update")  # the updates after the checkpoint are redone

    trackers = Trackers(trackers_of(config) if accelerator.is_main_process else [], output_dir, command="ppo",
                        config=asdict(config))
    progress = tqdm(range(start_update, config.max_updates), desc=f"ppo[{config.mode}]", initial=start_update,
                    total=config.max_updates, disable=config.disable_tqdm or not accelerator.is_main_process)
    clock = SaveClock(config.save_every, config.save_minutes)
    with StopSignals() as stop:
        for update in progress:
            started = time.perf_counter()
            # Each process draws its own prompts and samples; all are functions of the update.
            shard = update * accelerator.num_processes + accelerator.process_index
            update_seed = config.seed * 1_000_003 + shard

            # 1. roll out
            problem_indices = batch_indices(shard, len(train_problems), config.batch_size, config.seed)
            problems = [train_problems[i] for i in problem_indices]
            prompt_ids, response_ids, texts = roll_out(unwrapped.policy, tokenizer, problems, config, update_seed)
            per_response_problems = [p for p in problems for _ in range(config.samples_per_prompt)]

            # 2. score
            rollout = score_rollout(per_response_problems, prompt_ids, response_ids, texts, tokenizer, is_separator,
                                    eos_ids, config, step_scorer, outcome_scorer)
            batch = ResponseBatch.from_ids(prompt_ids, response_ids, tokenizer.pad_token_id, rollout.step_ends,
                                           share_prefixes).to(accelerator.device)
            mask = batch.response_mask
            old_logprobs, old_values, ref_logprobs = rollout_logprobs(model, reference, batch, config.temperature)

            # 3. rewards: scores on their tokens, and -beta * k1 on every token unless the KL is a loss term
            task_scores, placed = placed_scores(rollout, mask.shape[1], config)
            scores = rescaled_scores(task_scores, placed, config).to(accelerator.device)
            placed = placed.to(accelerator.device)
            rewards = token_rewards(scores.sum(0), old_logprobs, ref_logprobs, mask, kl_controller.value,
                                    config.kl_estimator)

            # 4. advantages: GAE with the critic, or group baselines
            advantages, returns = advantages_and_returns(rewards, scores, placed, old_values, mask, config)

            # 5. clipped updates, at the lr of this update (a function of the update alone, so a
            # resumed run continues the same schedule)
            lr = config.lr * min(1.0, (update + 1) / config.warmup_updates) if config.warmup_updates else config.lr
            for group in optimizer.param_groups:
                group["lr"] = lr
            # Drawn by the shard, as the prompts are: each process trains on its own reference solutions.
            ptx = None if reference_loss is None else (
                lambda k, shard=shard: reference_loss(unwrapped.policy, shard * config.ppo_epochs * config.n_minibatches + k))
            stats = _optimise(model, optimizer, accelerator, batch, old_logprobs, old_values, ref_logprobs, advantages,
                              returns, config, kl_controller.value, generator=torch.Generator().manual_seed(update_seed),
                              ptx=ptx)

            # KL per response of the rollout policy, by the estimator in use (it drives the
            # adaptive beta) and by both unbiased ones for comparison. Means over every process's
            # responses (each holds as many), so that all processes move beta alike and the
            # checkpoint's beta is every process's.
            names = list(dict.fromkeys((config.kl_estimator, "k1", "k3")))
            # The task reward per response, before --reward_whiten (whose scale changes with
            # every batch) and --reward_clip: one scale for the whole curve.
            update_means = _process_mean(accelerator, [
                *((kl_estimate(old_logprobs, ref_logprobs, name) * mask).sum(1).mean().item() for name in names),
                task_scores.sum((0, 2)).mean().item(), float(np.mean(rollout.correct)), mask.sum(1).mean().item()])
            kl_per_response = dict(zip(names, update_means))
            mean_kl = kl_per_response[config.kl_estimator]
            kl_controller.update(mean_kl, len(response_ids) * accelerator.num_processes)
            record = {
                "update": update + 1,
                "reward": update_means[-3],
                "train_accuracy": update_means[-2],
                "kl": mean_kl,
                "kl_k1": kl_per_response["k1"],
                "kl_k3": kl_per_response["k3"],
                "kl_coef": kl_controller.value,
                "lr": lr,
                "response_tokens": update_means[-1],
                **stats,
                "seconds": time.perf_counter() - started,
            }
            if heldout and config.eval_every and ((update + 1) % config.eval_every == 0 or update + 1 == config.max_updates):
                record["heldout_accuracy"] = heldout_accuracy(unwrapped.policy, tokenizer, heldout, temperature=0.0,
                                                              max_new_tokens=config.max_new_tokens)
            if accelerator.is_main_process:
                with metrics_path.open("a") as handle:
                    handle.write(dumps(record) + "\n")
                trackers.log(record, update + 1)
            progress.set_postfix(reward=f"{record['reward']:.3f}", acc=f"{record['train_accuracy']:.2f}", kl=f"{mean_kl:.3f}")
            done = update + 1
            save, stopping = save_or_stop(accelerator, stop, clock, done)
            # The last update is saved too: with the critic and optimizer, the run can be continued.
            if done == config.max_updates or save:
                saved_to = checkpoint_path(output_dir, done)
                _save_checkpoint(accelerator, unwrapped, optimizer, kl_controller, done, saved_to, fingerprint)
                clock.saved()
                if stopping and done < config.max_updates:
                    progress.close()
                    raise interrupted(stop, done, config.max_updates, saved_to, "ppo", config, unit="update")

    if accelerator.is_main_process:
        _save_policy(unwrapped.policy, tokenizer, output_dir / "policy")
        _write_card(config, output_dir, train_problems, heldout)
    trackers.close()
    return output_dir


def _process_mean(accelerator, values: list[float]) -> list[float]:
    """The mean of each value over all processes (as given in one process)."""
    if accelerator.num_processes == 1:
        return values
    return accelerator.reduce(torch.tensor(values, device=accelerator.device), reduction="mean").tolist()


def _optimise(model, optimizer, accelerator, batch: ResponseBatch, old_logprobs, old_values, ref_logprobs, advantages,
              returns, config: PPOConfig, kl_coef: float, generator: torch.Generator, ptx=None) -> dict[str, float]:
    """`ppo_epochs` passes of shuffled minibatches; returns the mean statistics.

    loss = clipped policy loss [+ beta * KL loss (k2/k3)] - ent_coef * entropy [+ vf_coef * value loss]
    [+ ptx_coef * ptx(k), the supervised loss of the update's k-th minibatch (`ReferenceSolutionLoss`)].
    """
    rows = batch.response_ids.shape[0]
    # A minibatch holds whole groups (the samples of a prompt are consecutive), so that shared
    # rows compute each group's prompt and common steps once.
    group = config.samples_per_prompt if rows % config.samples_per_prompt == 0 else 1
    totals: dict[str, list[float]] = {}
    use_critic = config.mode != "group"
    kl_in_loss = config.kl_estimator in LOSS_KL_ESTIMATORS
    minibatch_number = 0
    for _ in range(config.ppo_epochs):
        epoch_kl = []
        # tensor_split, not chunk: chunk gives fewer parts when the sizes do not divide (5 into 4 -> 3).
        for groups in torch.randperm(rows // group, generator=generator).tensor_split(config.n_minibatches):
            chunk = (groups.unsqueeze(1) * group + torch.arange(group)).flatten().to(batch.input_ids.device)
            minibatch = batch.select(chunk)
            mask = minibatch.response_mask
            logits, values = model(minibatch)
            logits = logits / config.temperature  # the sampling distribution, as for the old log-probs
            logprobs = token_logprobs(logits, minibatch.response_ids)
            loss, stats = policy_loss(logprobs, old_logprobs[chunk], advantages[chunk], mask, config.clip_range)
            stats["policy_loss"] = loss.item()
            if kl_in_loss:
                kl_term = kl_loss(logprobs, ref_logprobs[chunk], mask, config.kl_estimator)
                loss = loss + kl_coef * kl_term
                stats["kl_loss"] = kl_term.item()
            entropy = masked_mean(entropy_from_logits(logits), mask)
            loss = loss - config.ent_coef * entropy
            if use_critic:
                critic_loss = value_loss(values, old_values[chunk], returns[chunk], mask, config.value_clip_range)
                loss = loss + config.vf_coef * critic_loss
                stats["value_loss"] = critic_loss.item()
            if ptx is not None:
                ptx_term = ptx(minibatch_number)
                loss = loss + config.ptx_coef * ptx_term
                stats["ptx_loss"] = ptx_term.item()
            minibatch_number += 1
            stats["entropy"] = entropy.item()
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            for key, value in stats.items():
                totals.setdefault(key, []).append(value)
            epoch_kl.append(stats["approx_kl"])
        # Every process stops on the mean over all of them: one that stopped alone would leave
        # the others waiting in the next backward's gradient all-reduce.
        if config.target_kl > 0 and _process_mean(accelerator, [float(np.mean(epoch_kl))])[0] > 1.5 * config.target_kl:
            break
    summary = {key: float(np.mean(values)) for key, values in totals.items()}
    summary["minibatch_updates"] = len(totals["approx_kl"])
    return summary


# --------------------------------------------------------------------------- checkpoints


def _save_checkpoint(accelerator, model: PolicyWithValue, optimizer, kl_controller: KLController, update: int,
                     directory: Path, fingerprint: dict) -> None:
    """Policy and critic, optimizer and KL coefficient after `update`, with the run's fingerprint,
    written whole or not at all (`saved_atomically`)."""
    from safetensors.torch import save_model

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with saved_atomically(directory) as partial:
            save_model(model, str(partial / "model.safetensors"))
            torch.save({"optimizer": optimizer.state_dict(), "update": update, "kl_coef": kl_controller.value},
                       partial / "state.pt")
            write_run_file(partial, fingerprint)
    accelerator.wait_for_everyone()


def _load_checkpoint(checkpoint_dir: Path, model: PolicyWithValue, optimizer, kl_controller: KLController) -> int:
    from safetensors.torch import load_model

    load_model(model, str(checkpoint_dir / "model.safetensors"))
    state = torch.load(checkpoint_dir / "state.pt", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    kl_controller.value = state["kl_coef"]
    return state["update"]


def _save_policy(policy, tokenizer, path: Path) -> None:
    """The trained policy as an ordinary HF dir (a LoRA adapter is merged into a copy)."""
    import copy

    if hasattr(policy, "merge_and_unload"):
        policy = copy.deepcopy(policy).merge_and_unload()
    policy.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)


def objective_summary(config: PPOConfig) -> str:
    """What a run optimised, for its model card: every reward term in use with its weight, the
    advantage estimator, the KL term, the supervised term and the rollout temperature."""
    terms = []
    # Step rewards come from the step scorer that `train_ppo` builds: none in outcome mode.
    if config.mode != "outcome" and (config.prm or config.checker_coef == 1.0 or config.mode == "dense"):
        coef = config.checker_coef
        source = {0.0: f"PRM {config.prm or '(given in Python)'} step scores",
                  1.0: "sympy checker step verdicts (1 true, 0 false, 0.5 uncheckable)"}.get(
            coef, f"{1 - coef:g} x PRM {config.prm} + {coef:g} x sympy checker step verdicts")
        terms.append(f"step rewards: {source} ({config.step_score_form}, x{config.step_coef:g})")
    if config.verifier_coef:
        gate = ", paid only when the sympy checker finds no false step" if config.outcome_gate == "checker" else ""
        terms.append(f"outcome reward: verifier (x{config.verifier_coef:g}){gate}")
    if config.orm and config.orm_coef:
        terms.append(f"ORM {config.orm} (x{config.orm_coef:g})")
    placement = ("as a per-token reward penalty" if config.kl_estimator not in LOSS_KL_ESTIMATORS
                 else "as a loss term")
    adaptive = f", adaptive to {config.kl_target:g} per sequence" if config.kl_target is not None else ""
    terms.append(f"KL to the reference: {config.kl_estimator} {placement}, beta {config.kl_coef:g}{adaptive}")
    if config.ptx_coef:
        terms.append(f"PPO-ptx: next-token loss on reference solutions (x{config.ptx_coef:g})")
    advantages = (f"group baseline ({config.group_advantage}), no critic" if config.mode == "group"
                  else f"GAE (gamma {config.gamma:g}, lambda {config.lam:g}), {config.critic} critic")
    return (f"PPO, {config.mode} mode, {advantages}; " + "; ".join(terms)
            + f"; rollouts at T = {config.temperature:g}")


def _write_card(config: PPOConfig, output_dir: Path, train_problems: list[Problem], heldout: list[Problem]) -> None:
    """README.md model card in output_dir and output_dir/policy (the folder --push_to_hub uploads)."""
    lines = (output_dir / "metrics.jsonl").read_text().splitlines()
    last = json.loads(lines[-1]) if lines else {}
    evaluated = [json.loads(line) for line in lines if "heldout_accuracy" in line]
    metrics = {"train_accuracy (last update)": last.get("train_accuracy"), "reward (last update)": last.get("reward"),
               "kl (last update)": last.get("kl")}
    if evaluated:
        metrics["heldout_accuracy"] = evaluated[-1]["heldout_accuracy"]
    policy_dir = output_dir / "policy"
    usage = f"""from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained("{policy_dir}")
tokenizer = AutoTokenizer.from_pretrained("{policy_dir}")"""
    finish_run(policy_dir, config, command="ppo", output_dir=output_dir, kind="math policy", base_model=config.policy,
               data={"source": config.data, "eval_source": config.eval_data,
                     "training records": f"{len(train_problems)} problems", "held-out records": len(heldout),
                     "label sources": {f"PRM {config.prm}": None} if config.prm and config.mode != "outcome"
                     else {"verifier (final answer)": None},
                     "steps": "rewards per solution step, at its separator"},
               objective=objective_summary(config),
               steps=f"{config.max_updates} updates x {config.batch_size} prompts x {config.samples_per_prompt} samples, "
                     f"{config.ppo_epochs} epochs, lr {config.lr}, seed {config.seed}",
               metrics={k: v for k, v in metrics.items() if v is not None}, usage=usage, config_file="ppo_config.json")
