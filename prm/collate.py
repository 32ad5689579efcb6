"""Records -> features -> padded batches, and a seeded length-grouped batch sampler.

A feature is one encoded sequence::

    {"input_ids": list[int],
     "label_positions": list[int],    # each kept step's last separator token (encode_steps)
     "labels": list[float],           # one per kept position; soft labels stay floats
     "outcome_position": int,         # last kept step end, or -1 when truncation dropped the end
     "outcome_label": float}

A pairwise record becomes two features (chosen, rejected) plus its margin; `collate_pairs` puts
the chosen rows first and the rejected rows after them in one batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

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


def collate_features(features: Sequence[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest feature in the batch (right padding).

    Returns input_ids [B, L] long, attention_mask [B, L] long, step_labels [B, L] float,
    step_mask [B, L] bool, outcome_positions [B] long (-1 = none), outcome_labels [B] float.
    """
    width = max(len(feature["input_ids"]) for feature in features)
    size = len(features)
    input_ids = torch.full((size, width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((size, width), dtype=torch.long)
    step_labels = torch.zeros((size, width), dtype=torch.float)
    step_mask = torch.zeros((size, width), dtype=torch.bool)
    for row, feature in enumerate(features):
        length = len(feature["input_ids"])
        input_ids[row, :length] = torch.tensor(feature["input_ids"], dtype=torch.long)
        attention_mask[row, :length] = 1
        positions = torch.tensor(feature["label_positions"], dtype=torch.long)
        step_labels[row, positions] = torch.tensor(feature["labels"], dtype=torch.float)
        step_mask[row, positions] = True
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "step_labels": step_labels,
        "step_mask": step_mask,
        "outcome_positions": torch.tensor([f["outcome_position"] for f in features], dtype=torch.long),
        "outcome_labels": torch.tensor([f["outcome_label"] for f in features], dtype=torch.float),
    }


def collate_pairs(pairs: Sequence[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pairwise features -> one batch of 2N rows (rows [0, N) chosen, [N, 2N) rejected) + margins [N]."""
    batch = collate_features([p["chosen"] for p in pairs] + [p["rejected"] for p in pairs], pad_token_id)
    batch["margins"] = torch.tensor([p["margin"] for p in pairs], dtype=torch.float)
    return batch


def feature_length(feature: dict) -> int:
    if "chosen" in feature:
        return max(len(feature["chosen"]["input_ids"]), len(feature["rejected"]["input_ids"]))
    return len(feature["input_ids"])


class LengthGroupedBatchSampler:
    """Seeded batches of similar length, sharded over processes.

    Each epoch: shuffle all indices (seed + epoch), cut them into groups of `group_batches`
    global batches, sort each group by length (longest first) and cut it into global batches of
    `batch_size * num_processes`; process p takes the p-th slice of `batch_size` of every global
    batch. The order depends only on the global batch size, so 2 processes x b see the same
    global batches as 1 process x 2b. Incomplete last global batches are dropped.
    `set_epoch` picks the epoch; `start_batch` skips batches already consumed (resume).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, num_processes: int = 1, process_index: int = 0,
                 seed: int = 0, group_batches: int = 16, group_by_length: bool = True):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.num_processes = num_processes
        self.process_index = process_index
        self.seed = seed
        self.group_batches = group_batches
        self.group_by_length = group_by_length
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

    def global_batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        global_size = self.batch_size * self.num_processes
        if self.group_by_length:
            group = global_size * self.group_batches
            order = [index for start in range(0, len(order), group)
                     for index in sorted(order[start:start + group], key=lambda i: -self.lengths[i])]
        return [order[start:start + global_size] for start in range(0, len(self) * global_size, global_size)]

    def __iter__(self) -> Iterator[list[int]]:
        lo = self.process_index * self.batch_size
        for batch in self.global_batches()[self.start_batch:]:
            yield batch[lo:lo + self.batch_size]
