"""Records -> features -> batches, and a seeded batch sampler.

A feature is one encoded sequence::

    {"input_ids": list[int],
     "prompt_length": int,            # ids before the first step (encode_steps)
     "label_positions": list[int],    # each kept step's last separator token (encode_steps)
     "labels": list[float],           # one per kept position; soft labels stay floats
     "outcome_position": int,         # last kept step end, or -1 when truncation dropped the end
     "outcome_label": float}

A pairwise record becomes two features (chosen, rejected) plus its margin; `collate_pairs` puts
the chosen sequences first and the rejected ones after them in one batch.

Two batch layouts, with the same keys, so the loss code never asks which one it got:

- padded: one row per sequence, right-padded to the longest.
- shared prompts: the sequences of a batch that start with the same prompt go into one row,
  the prompt once and then each solution, and a tree-shaped attention mask lets every solution
  see the prompt and itself only; position ids restart after the prompt for each solution. For
  a causal decoder every logit equals the one of the padded layout (tests pin this), while the
  prompt is computed once instead of once per solution. Step-labelled data usually holds
  several solutions per question (Math-Shepherd, PRM800K, `prm label` output), so this cuts the
  tokens a training step computes by the prompt's share of them::

      row:   [ prompt | solution A | solution B | pad ]
      mask:  A sees prompt + A,  B sees prompt + B,  pad sees itself
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence

import torch

from prm.encoding import encode_steps


def split_completion(completion: str, separator: str) -> list[str]:
    """A completion text as steps: split on the separator, empty pieces left out."""
    return [piece for piece in completion.split(separator) if piece.strip()]


def _label_value(label) -> float:
    return float(label)


def encode_step_record(tokenizer, record: dict, settings, max_length: int | None = None) -> dict:
    """A step-labelled record {prompt, completions, labels} -> feature. The outcome label is the
    lowest step label (all steps correct, for hard labels)."""
    encoded = encode_steps(tokenizer, record["prompt"], record["completions"], settings, max_length)
    labels = [_label_value(label) for label in record["labels"]]
    kept = len(encoded.step_ends)
    return {
        "input_ids": encoded.input_ids,
        "prompt_length": encoded.prompt_length,
        "label_positions": encoded.step_ends,
        "labels": labels[:kept],
        "outcome_position": encoded.step_ends[-1] if encoded.n_dropped == 0 else -1,
        "outcome_label": min(labels),
        "n_dropped": encoded.n_dropped,
    }


def encode_outcome_record(tokenizer, prompt: str, completion: str, label, settings,
                          max_length: int | None = None) -> dict:
    """An outcome record -> feature; the completion is split into steps on the separator so the
    ORM is read where a PRM reads the last step."""
    steps = split_completion(completion, settings.separator)
    if not steps:
        raise ValueError("completion has no non-empty step")
    encoded = encode_steps(tokenizer, prompt, steps, settings, max_length)
    return {
        "input_ids": encoded.input_ids,
        "prompt_length": encoded.prompt_length,
        "label_positions": [],
        "labels": [],
        "outcome_position": encoded.step_ends[-1] if encoded.n_dropped == 0 else -1,
        "outcome_label": _label_value(label),
        "n_dropped": encoded.n_dropped,
    }


def encode_pairwise_record(tokenizer, record: dict, settings, max_length: int | None = None) -> dict:
    """{prompt, chosen, rejected, margin?} -> {"chosen": feature, "rejected": feature, "margin": float}."""
    return {
        "chosen": encode_outcome_record(tokenizer, record["prompt"], record["chosen"], 1.0, settings, max_length),
        "rejected": encode_outcome_record(tokenizer, record["prompt"], record["rejected"], 0.0, settings, max_length),
        "margin": float(record.get("margin") or 0.0),
    }


def collate_features(features: Sequence[dict], pad_token_id: int, solutions_per_row: int = 1) -> dict[str, torch.Tensor]:
    """Features -> one batch of R rows of width W (the module docstring shows both layouts).

    solutions_per_row: at most this many sequences that start with the same prompt share a row
    (1 = the padded layout). Sharing is used only where it needs fewer row slots than padding.

    Returns input_ids [R, W] long; attention_mask [R, W] long (padded layout) or [R, 1, W, W]
    bool (shared prompts: True = may attend); position_ids [R, W] long (shared prompts only);
    step_labels [R, W] float and step_mask [R, W] bool at the label positions;
    outcome_positions [N] long, one per feature in input order, an index into the flattened
    [R * W] logits (-1 = none); outcome_labels [N] float; num_tokens (the features' own token
    count, a shared prompt counted once per sequence) and num_computed (tokens in the rows)
    as 0-d long tensors.
    """
    rows = _rows(features, solutions_per_row) if solutions_per_row > 1 else [[i] for i in range(len(features))]
    width = max(_row_length(features, row) for row in rows)
    if len(rows) * width >= len(features) * max(len(f["input_ids"]) for f in features):
        rows, width = [[i] for i in range(len(features))], max(len(f["input_ids"]) for f in features)
    shared = any(len(row) > 1 for row in rows)
    size = len(rows)
    input_ids = torch.full((size, width), pad_token_id, dtype=torch.long)
    position_ids = torch.zeros((size, width), dtype=torch.long)
    segments = torch.full((size, width), -1, dtype=torch.long)  # 0 = shared prompt, k = k-th sequence, -1 = pad
    step_labels = torch.zeros((size, width), dtype=torch.float)
    step_mask = torch.zeros((size, width), dtype=torch.bool)
    outcome_positions = torch.full((len(features),), -1, dtype=torch.long)
    for r, row in enumerate(rows):
        prompt = features[row[0]]["prompt_length"] if len(row) > 1 else 0
        input_ids[r, :prompt] = torch.tensor(features[row[0]]["input_ids"][:prompt], dtype=torch.long)
        position_ids[r, :prompt] = torch.arange(prompt)
        segments[r, :prompt] = 0
        start = prompt
        for k, index in enumerate(row, 1):
            feature = features[index]
            tail = feature["input_ids"][prompt:]
            stop = start + len(tail)
            input_ids[r, start:stop] = torch.tensor(tail, dtype=torch.long)
            position_ids[r, start:stop] = torch.arange(prompt, prompt + len(tail))
            segments[r, start:stop] = k
            shift = start - prompt  # sequence position -> row position
            positions = torch.tensor(feature["label_positions"], dtype=torch.long) + shift
            step_labels[r, positions] = torch.tensor(feature["labels"], dtype=torch.float)
            step_mask[r, positions] = True
            if feature["outcome_position"] >= 0:
                outcome_positions[index] = r * width + feature["outcome_position"] + shift
            start = stop
    batch = {
        "input_ids": input_ids,
        "step_labels": step_labels,
        "step_mask": step_mask,
        "outcome_positions": outcome_positions,
        "outcome_labels": torch.tensor([f["outcome_label"] for f in features], dtype=torch.float),
        "num_tokens": torch.tensor(sum(len(f["input_ids"]) for f in features)),
        "num_computed": (segments >= 0).sum(),
    }
    if shared:
        batch["attention_mask"] = _tree_mask(segments).unsqueeze(1)
        batch["position_ids"] = position_ids
    else:
        batch["attention_mask"] = (segments >= 0).long()
    return batch


def _rows(features: Sequence[dict], solutions_per_row: int) -> list[list[int]]:
    """Feature indices per row: sequences with the same prompt ids together, up to
    `solutions_per_row` per row; a sequence with no step after its prompt stays alone."""
    rows: list[list[int]] = []
    open_rows: dict[tuple[int, ...], list[int]] = {}
    for index, feature in enumerate(features):
        prompt_length = feature["prompt_length"]
        if not 0 < prompt_length < len(feature["input_ids"]):
            rows.append([index])
            continue
        key = tuple(feature["input_ids"][:prompt_length])
        row = open_rows.get(key)
        if row is None or len(row) == solutions_per_row:
            row = open_rows[key] = []
            rows.append(row)
        row.append(index)
    return rows


def _row_length(features: Sequence[dict], row: list[int]) -> int:
    prompt = features[row[0]]["prompt_length"] if len(row) > 1 else 0
    return prompt + sum(len(features[i]["input_ids"]) - prompt for i in row)


def _tree_mask(segments: torch.Tensor) -> torch.Tensor:
    """segments [R, W] (0 = shared prompt, k > 0 = k-th sequence, -1 = pad) -> [R, W, W] bool:
    causal, and a query sees keys of the prompt and of its own sequence; a pad sees itself only
    (a row of the mask with no True would give NaN in attention)."""
    width = segments.shape[1]
    query, key = segments.unsqueeze(2), segments.unsqueeze(1)
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    visible = causal & (key >= 0) & ((key == query) | (key == 0))
    return visible | torch.eye(width, dtype=torch.bool)


def collate_pairs(pairs: Sequence[dict], pad_token_id: int, solutions_per_row: int = 1) -> dict[str, torch.Tensor]:
    """Pairwise features -> one batch of 2N sequences (outcome_positions [0, N) chosen, [N, 2N)
    rejected) + margins [N]. With solutions_per_row > 1 a pair shares its prompt."""
    batch = collate_features([p["chosen"] for p in pairs] + [p["rejected"] for p in pairs], pad_token_id,
                             solutions_per_row)
    batch["margins"] = torch.tensor([p["margin"] for p in pairs], dtype=torch.float)
    return batch


def prompt_key(feature: dict) -> tuple[int, ...]:
    """The prompt's token ids: features with equal keys can share the prompt's encoding."""
    feature = feature.get("chosen", feature)
    return tuple(feature["input_ids"][:feature["prompt_length"]])


def feature_length(feature: dict) -> int:
    if "chosen" in feature:
        return max(len(feature["chosen"]["input_ids"]), len(feature["rejected"]["input_ids"]))
    return len(feature["input_ids"])


class LengthGroupedBatchSampler:
    """Seeded batches, optionally of similar length or of solutions that share a prompt, sharded
    over processes.

    Each epoch (seed + epoch): the examples are put in units, shuffled, optionally length-grouped,
    and cut into global batches of `batch_size * num_processes`; process p takes the p-th slice of
    `batch_size` of every global batch. A unit is one example, or with `prompts` and
    `solutions_per_prompt` > 1 up to that many examples with the same prompt (shuffled within
    the prompt), which then land in the same batch and can share the prompt's encoding
    (`collate_features(..., solutions_per_row)`). With `group_by_length`, units are cut into
    groups of `group_batches` global batches and each group is sorted by length, longest first.
    The order depends only on the global batch size, so 2 processes x b see the same global
    batches as 1 process x 2b. Incomplete last global batches are dropped.
    `set_epoch` picks the epoch; `start_batch` skips batches already consumed (resume).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, num_processes: int = 1, process_index: int = 0,
                 seed: int = 0, group_batches: int = 16, group_by_length: bool = True,
                 prompts: Sequence[Hashable] | None = None, solutions_per_prompt: int = 1):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.num_processes = num_processes
        self.process_index = process_index
        self.seed = seed
        self.group_batches = group_batches
        self.group_by_length = group_by_length
        self.solutions_per_prompt = solutions_per_prompt if prompts is not None else 1
        self.prompt_members: list[list[int]] = []
        if self.solutions_per_prompt > 1:
            members: dict[Hashable, list[int]] = {}
            for index, prompt in enumerate(prompts):
                members.setdefault(prompt, []).append(index)
            self.prompt_members = list(members.values())
        self.epoch = 0
        self.start_batch = 0
        if len(self) == 0:
            raise ValueError(f"{len(self.lengths)} examples are fewer than one global batch "
                             f"({batch_size} x {num_processes} processes)")

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch

    def __len__(self) -> int:
        return len(self.lengths) // (self.batch_size * self.num_processes)

    def _units(self, generator: torch.Generator) -> list[list[int]]:
        if self.solutions_per_prompt == 1:
            return [[index] for index in torch.randperm(len(self.lengths), generator=generator).tolist()]
        units = []
        for members in self.prompt_members:
            shuffled = [members[i] for i in torch.randperm(len(members), generator=generator).tolist()]
            units += [shuffled[i:i + self.solutions_per_prompt] for i in range(0, len(shuffled), self.solutions_per_prompt)]
        return [units[i] for i in torch.randperm(len(units), generator=generator).tolist()]

    def global_batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        units = self._units(generator)
        global_size = self.batch_size * self.num_processes
        if self.group_by_length:
            group = global_size * self.group_batches
            chunks, chunk, size = [], [], 0
            for unit in units:  # consecutive chunks of about `group` examples, each sorted
                chunk.append(unit)
                size += len(unit)
                if size >= group:
                    chunks.append(chunk)
                    chunk, size = [], 0
            chunks.append(chunk)
            units = [unit for chunk in chunks for unit in sorted(chunk, key=lambda u: -sum(self.lengths[i] for i in u))]
        order = [index for unit in units for index in unit]
        return [order[start:start + global_size] for start in range(0, len(self) * global_size, global_size)]

    def __iter__(self) -> Iterator[list[int]]:
        lo = self.process_index * self.batch_size
        for batch in self.global_batches()[self.start_batch:]:
            yield batch[lo:lo + self.batch_size]
