"""`prm search`: step-level beam search, DVTS or best-of-N over a file of problems.

    prm search --problems problems.jsonl --policy Qwen/Qwen2.5-Math-1.5B-Instruct \\
        --prm runs/prm --method beam --width 16 --beam_width 4 --output results.jsonl

Problems are a problems file read by `tasks.math.records.read_problems` (`{"question" |
"prompt" | "problem", "reference" | "answer"?, "id"?}`, GSM8K, TRL stepwise; here the answer is
optional) or `synthetic:PRESET` (generated with the preset's reference answers). Each output line holds
the problem, the best candidate (steps, step scores, score, answer), all candidates and the
cost counters; with references, the accuracy of the best candidates is printed and written
to `<output>.metrics.json`.

A problem that does not fit the models is skipped (a line with `"skipped"`, a warning naming
it) and, when it has a reference, counted as not solved (`"correct": false`): the accuracy is
over every problem with a reference that was asked, so a skip never raises it and two runs
over one problems file are averaged over the same problems. The number skipped is printed
beside the accuracy and written as `skipped` (`judged`: the problems with a reference).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from search.beam import AGGREGATIONS, METHODS, BeamConfig, SearchCounters, search_many
from prm.recipe import check_output_file, run_fingerprint, start_output_file
from tasks.math.records import read_problems
from tasks.math.limits import TooLong


@dataclass
class SearchConfig:
    """Options of `prm search` (also its Python API: `run_search(SearchConfig(...))`)."""

    policy: str = field(metadata={"help": "Policy causal LM: a local directory, hub id or alias."})
    prm: str = field(metadata={"help": "Reward model directory or hub id (prm.load), or 'verifier' for the sympy step checker."})
    problems: str = field(default="synthetic:tiny",
                          metadata={"help": "Problems JSONL ({question|prompt|problem, reference|answer?}, GSM8K, TRL stepwise) or synthetic:PRESET."})
    n_problems: int = field(default=0, metadata={"help": "Use only the first N problems (0: all; synthetic: 16)."})
    method: str = field(default="beam", metadata={"help": "beam | dvts | best_of_n"})
    width: int = field(default=8, metadata={"help": "Steps (or, for best_of_n, solutions) sampled per round: N."})
    beam_width: int = field(default=4, metadata={"help": "Children per beam M; width // M beams or subtrees."})
    max_steps: int = field(default=10, metadata={"help": "Most steps per solution."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature of the policy."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass of the policy."})
    aggregation: str = field(default="last", metadata={"help": "Step-score aggregation: last | min | prod | mean."})
    lookahead: int = field(default=0, metadata={"help": "Greedy steps rolled forward and scored per candidate."})
    max_step_tokens: int = field(default=64, metadata={"help": "Most tokens per step."})
    max_new_tokens: int = field(default=256, metadata={"help": "Most tokens per whole solution (best_of_n)."})
    batch_size: int = field(default=16, metadata={"help": "Most sequences per forward pass of the policy and of the PRM (it orders the sampler's draws, so it changes the samples; a resume must keep it)."})
    questions_per_batch: int = field(default=32, metadata={"help": "Beam/DVTS searches run in lockstep, their rounds batched together (1: one by one, as best_of_n always runs)."})
    seed: int = field(default=0, metadata={"help": "Seed of the policy's sampler (a batch of problems: seed + its first problem's index)."})
    device: str = field(default="", metadata={"help": "Torch device: cpu, cuda, cuda:1, ...; empty: cuda if available, else cpu."})
    output: str = field(default="search_results.jsonl", metadata={"help": "Where to write one JSON line per problem."})
    overwrite_output: bool = field(default=False, metadata={"help": "Replace an existing --output (without it, or --resume latest, an existing output is refused)."})
    resume: str | None = field(default=None, metadata={"help": "'latest': continue an interrupted --output of the same run (same models, problems, options and device type: cpu, cuda, ...)."})

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"--method must be one of {sorted(METHODS)}, got {self.method!r}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"--aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if self.questions_per_batch < 1:
            raise ValueError(f"--questions_per_batch must be >= 1, got {self.questions_per_batch}")
        for name in ("max_step_tokens", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")


# Options that do not change what is written for a problem. Not batch_size: the policy samples a
# round's rows in chunks of batch_size // k, each drawing from the one generator for all its
# tokens before the next, so another batch size samples other candidates. `device` as given is
# left out ("" and "cuda:0" may be the same run); the fingerprint holds the type it resolved to.
NOT_IN_FINGERPRINT = ("output", "overwrite_output", "resume", "device")


def load_scorer(name: str, device: str | None, batch_size: int = 16):
    """The PRM at `name` (prm.load), or the sympy verifier scorer for 'verifier'."""
    if name == "verifier":
        from search.scorers import VerifierScorer

        return VerifierScorer()
    import prm

    return prm.load(name, device=device, batch_size=batch_size)


def search_batch(problems: list, first_index: int, policy, scorer, config: SearchConfig) -> list:
    """The search result of each problem (or the TooLong that stopped it), problem i of the file
    seeded by config.seed + i. Beam search and DVTS run the batch in lockstep
    (`search.beam.search_many`, seeded by its first problem); when one problem does not fit the
    models, the batch is searched again one problem at a time, so only that one is lost."""
    configs = [BeamConfig(width=config.width, beam_width=config.beam_width, max_steps=config.max_steps,
                          temperature=config.temperature, aggregation=config.aggregation,
                          lookahead=config.lookahead, seed=config.seed + first_index + offset)
               for offset in range(len(problems))]
    if config.method != "best_of_n" and len(problems) > 1:
        try:
            return search_many([problem.question for problem in problems], policy, scorer, configs, config.method)
        except TooLong:
            pass
    results = []
    for problem, beam_config in zip(problems, configs):
        try:
            results.append(METHODS[config.method](problem.question, policy, scorer, beam_config))
        except TooLong as error:
            results.append(error)
    return results


def _result_record(problem, result, config: SearchConfig) -> dict:
    """The output line of one problem (a skipped one is named in a warning and, with a
    reference, not solved)."""
    from verifiers import answers_equivalent, extract_answer

    if isinstance(result, TooLong):
        print(f"prm search: warning: {config.problems}, problem {problem.id}: skipped, {result}", file=sys.stderr)
        record = {"id": problem.id, "prompt": problem.question[:200], "reference": problem.answer,
                  "skipped": str(result)}
        if problem.answer is not None:
            record["correct"] = False
        return record
    answer = extract_answer(result.best.text) if result.candidates else None
    record = {
        "id": problem.id, "prompt": problem.question, "reference": problem.answer,
        "answer": answer, "best": asdict(result.best) if result.candidates else None,
        "candidates": [asdict(candidate) for candidate in result.candidates],
        "counters": asdict(result.counters),
    }
    if problem.answer is not None:
        record["correct"] = answer is not None and answers_equivalent(problem.answer, answer)
    return record


def run_search(config: SearchConfig) -> dict:
    """Search every problem, write JSONL results; returns the metrics: `problems` (all asked),
    `skipped`, `counters` and, with references, `judged` (the problems with one, skipped ones
    included) and `accuracy` (solved / judged)."""
    from tqdm.auto import tqdm

    from generation.policy import HFPolicy

    problems = read_problems(config.problems, limit=config.n_problems, n_synthetic=config.n_problems or 16,
                             require_answer=False)
    output = Path(config.output)
    fingerprint = run_fingerprint(config, ignore=NOT_IN_FINGERPRINT, data_fields=("problems",),
                                  model_fields=("policy", "prm"))
    check_output_file(output, overwrite=config.overwrite_output, resuming=bool(config.resume))
    device = config.device or None
    policy = HFPolicy.from_pretrained(
        config.policy, device=device, temperature=config.temperature, top_p=config.top_p,
        max_new_tokens=config.max_new_tokens, max_step_tokens=config.max_step_tokens, seed=config.seed,
        batch_size=config.batch_size,
    )
    scorer = load_scorer(config.prm, device, config.batch_size)
    # The sampler's generator lives on the policy's device, and CPU and CUDA draw other streams
    # from one seed (and their kernels round differently), so a run resumed on another device type
    # would write a second run's lines after the first's.
    fingerprint["device"] = policy.device.type
    done = start_output_file(output, fingerprint, overwrite=config.overwrite_output, resume=config.resume)
    if done:
        print(f"prm search: resuming {output} after {done} of {len(problems)} problems")
    per_batch = 1 if config.method == "best_of_n" else config.questions_per_batch
    with output.open("a", encoding="utf-8") as handle, \
            tqdm(desc=f"prm search ({config.method})", initial=done, total=len(problems)) as bar:
        # Batches start at multiples of per_batch, so a run resumed inside a batch searches that
        # batch again (the same results) and writes only its missing lines.
        for begin in range(done - done % per_batch, len(problems), per_batch):
            batch = problems[begin: begin + per_batch]
            for index, problem, result in zip(range(begin, len(problems)), batch,
                                              search_batch(batch, begin, policy, scorer, config)):
                if index < done:
                    continue
                handle.write(json.dumps(_result_record(problem, result, config)) + "\n")
                bar.update()
            handle.flush()
    # The metrics cover the whole output file, a resumed run's earlier lines included.
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines() if line.strip()]
    totals = SearchCounters()
    for row in rows:
        if "counters" in row:
            totals.add(SearchCounters(**row["counters"]))
    skipped = sum("skipped" in row for row in rows)
    judged = sum("correct" in row for row in rows)
    correct = sum(bool(row.get("correct")) for row in rows)
    metrics = {"method": config.method, "problems": len(problems), "skipped": skipped, "counters": asdict(totals)}
    if skipped:
        print(f"prm search: warning: {skipped} of {len(problems)} problems skipped as too long for the models",
              file=sys.stderr)
    if judged:
        metrics["judged"] = judged
        metrics["accuracy"] = correct / judged
        judged_skipped = sum("skipped" in row and "correct" in row for row in rows)
        print(f"accuracy {correct}/{judged} = {correct / judged:.3f}"
              + (f" ({judged_skipped} skipped, counted as not solved)" if judged_skipped else ""))
    Path(str(output) + ".metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"wrote {output}")
    return metrics
