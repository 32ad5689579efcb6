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
- shared rows: the sequences of a batch that start with the same prompt become one prefix
  tree: the prompt once, then every distinct step prefix once (solutions that agree on their
  first k steps share those k steps; a duplicated solution adds no tokens). Trees are packed
  into rows as wide as the widest tree, so a lone short solution fills room beside others. The
  attention mask lets a token see its own path to the root only, and position ids count along it,
  so for a causal decoder every logit equals the one of the padded layout. A step prefix shared
  by k sequences carries the mean of their k labels with weight k, which gives the k separate
  loss terms exactly, because binary cross-entropy is linear in the label (tests pin logits,
  losses and gradients). Step-labelled data usually holds several solutions per question
  (Math-Shepherd, PRM800K, `prm label` output), often with common first steps, so a training
  step computes far fewer tokens::

      solutions:  P a b c  |  P a b' c'  |  P a b c (again)
      row:        [ P | a | b | c | b' | c' | pad ]
      b' sees P, a, b';  c sees P, a, b, c;  pad sees itself
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from prm.encoding import encode_steps
from tasks.math.steps import split_steps
from tasks.math.types import is_true_label


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


def encode_outcome_record(tokenizer, prompt: str, completion: str | Sequence[str], label, settings,
                          max_length: int | None = None) -> dict:
    """An outcome record -> feature, the ORM read where a PRM reads the last step. completion:
    the solution text, split into steps at the separator (as `RewardScorer.score` splits it), or
    its list of steps (the outcome view of a step-labelled record), encoded as they are, as a
    scored step list is."""
    steps = (split_steps(completion, separator=settings.separator) if isinstance(completion, str)
             else list(completion))
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

    solutions_per_row: at most this many sequences that start with the same prompt share a
    prefix tree (1 = the padded layout); trees are packed into rows as wide as the widest tree.
    Shared rows are used only where they need at least 15 % fewer row slots than padding.

    Returns input_ids [R, W] long; attention_mask [R, W] long (padded layout) or [R, 1, W, W]
    bool (shared rows: True = may attend; `additive_mask` gives the form the model takes);
    position_ids [R, W] long (shared rows only); step_labels [R, W] float, step_weights
    [R, W] float (how many sequences have a label there; step_labels holds their mean) and
    step_mask [R, W] bool at the label positions;
    lm_targets [R, W] long: the next token where a token and its successor lie in one step
    labelled correct (label >= 0.5, `is_true_label`), else -100; lm_weights [R, W] float: how many sequences
    have that correct step there (the auxiliary LM loss of `--lm_coef`);
    outcome_positions [N] long, one per feature in input order, an index into the flattened
    [R * W] logits (-1 = none); outcome_paths [N, S] long: the same kind of index for each of
    the feature's step ends, in order (-1 = none: padding, or a step a truncation dropped);
    outcome_labels [N] float; num_tokens (the features' own token
    count) and num_computed (tokens in the rows) as 0-d long tensors.
    """
    rows = _lay_out(features, pad_token_id, solutions_per_row)
    size, width = rows.input_ids.shape
    labelled: list[tuple[int, float, int]] = []  # (flat row index, label sum, count)
    correct_counts: dict[int, int] = {}  # node (over the batch) -> sequences labelling it correct
    outcomes = [-1] * len(features)
    paths: list[list[int]] = [[] for _ in features]
    for r, (tree, first_node) in enumerate(zip(rows.trees, rows.first_nodes)):
        labelled += [(r * width + position, total, count) for position, (total, count) in tree.labels.items()]
        correct_counts.update({tree.nodes[position] + first_node: count
                               for position, count in tree.correct.items() if count})
        for index, position in tree.outcomes.items():
            outcomes[index] = r * width + position
        for index, ends in tree.step_ends.items():
            paths[index] = [r * width + position for position in ends]
    step_sums = torch.zeros(size * width, dtype=torch.float)
    step_weights = torch.zeros(size * width, dtype=torch.float)
    if labelled:
        flat, totals, counts = zip(*labelled)
        step_sums[list(flat)] = torch.tensor(totals, dtype=torch.float)
        step_weights[list(flat)] = torch.tensor(counts, dtype=torch.float)
    step_sums, step_weights = step_sums.view(size, width), step_weights.view(size, width)
    step_mask = step_weights > 0
    outcome_positions = torch.tensor(outcomes, dtype=torch.long)
    outcome_paths = torch.full((len(features), max(map(len, paths), default=0)), -1, dtype=torch.long)
    for index, path in enumerate(paths):
        outcome_paths[index, :len(path)] = torch.tensor(path, dtype=torch.long)
    lm_targets, lm_weights = _lm_targets(rows.input_ids, rows.nodes, correct_counts)
    batch = {
        "input_ids": rows.input_ids,
        "step_labels": torch.where(step_mask, step_sums / step_weights.clamp(min=1), 0.0),
        "step_weights": step_weights,
        "step_mask": step_mask,
        "lm_targets": lm_targets,
        "lm_weights": lm_weights,
        "outcome_positions": outcome_positions,
        "outcome_paths": outcome_paths,
        "outcome_labels": torch.tensor([f["outcome_label"] for f in features], dtype=torch.float),
        "num_tokens": torch.tensor(sum(len(f["input_ids"]) for f in features)),
        "num_computed": (rows.nodes >= 0).sum(),
    }
    return {**batch, **rows.masks()}


def pack_sequences(sequences: Sequence[dict], pad_token_id: int, solutions_per_row: int) -> dict[str, torch.Tensor]:
    """Token sequences -> the rows of one forward pass, in `collate_features`'s layouts, and
    where each sequence's tokens lie in them (PPO's rollouts: `prm.ppo.model.ResponseBatch`).

    sequences: {"input_ids": list[int], "prompt_length": int, "node_ends": list[int]}; the
    node ends (a step's last token) are where sequences of one prompt may part, so sequences that
    agree on their prompt and first k steps compute those once.

    Returns input_ids [R, W] long; attention_mask [R, W] long (padded) or [R, 1, W, W] bool
    (shared rows) with position_ids [R, W] long; token_index [N, L] long: for token t of
    sequence n, its index into the flattened [R * W] outputs (-1 past the sequence's end).
    """
    features = [{"input_ids": s["input_ids"], "prompt_length": s["prompt_length"], "label_positions": s["node_ends"],
                 "labels": [], "outcome_position": -1} for s in sequences]
    rows = _lay_out(features, pad_token_id, solutions_per_row)
    width = rows.input_ids.shape[1]
    token_index = torch.full((len(sequences), max(len(s["input_ids"]) for s in sequences)), -1, dtype=torch.long)
    for r, tree in enumerate(rows.trees):
        for index, positions in tree.token_rows.items():
            token_index[index, :len(positions)] = torch.tensor(positions, dtype=torch.long) + r * width
    return {"input_ids": rows.input_ids, **rows.masks(), "token_index": token_index}


@dataclass
class _Rows:
    """A batch's prefix trees laid out in rows: input_ids, position_ids, nodes [R, W] (node of
    each token numbered over the batch, -1 = pad); parents[node]; first_nodes[r]: the batch
    number of row r's first node; sharing: whether sequences share rows."""

    trees: list["_PrefixTree"]
    first_nodes: list[int]
    parents: list[int]
    input_ids: torch.Tensor
    position_ids: torch.Tensor
    nodes: torch.Tensor
    sharing: bool

    def masks(self) -> dict[str, torch.Tensor]:
        if self.sharing:
            return {"attention_mask": _tree_mask(self.nodes, self.parents).unsqueeze(1), "position_ids": self.position_ids}
        return {"attention_mask": (self.nodes >= 0).long()}


def _lay_out(features: Sequence[dict], pad_token_id: int, solutions_per_row: int) -> _Rows:
    padded_slots = len(features) * max(len(feature["input_ids"]) for feature in features)
    sharing = False
    if solutions_per_row > 1:
        trees = [_prefix_tree(features, row) for row in _pack(features, _units(features, solutions_per_row))]
        # The tree mask takes attention off its fast causal path (about 15 % slower per slot
        # on CPU), so shared rows must save more row slots than that.
        sharing = len(trees) * max(len(tree.ids) for tree in trees) < 0.85 * padded_slots
    if not sharing:
        trees = [_prefix_tree(features, [index]) for index in range(len(features))]
    size, width = len(trees), max(len(tree.ids) for tree in trees)
    input_ids = torch.full((size, width), pad_token_id, dtype=torch.long)
    position_ids = torch.zeros((size, width), dtype=torch.long)
    nodes = torch.full((size, width), -1, dtype=torch.long)
    parents: list[int] = []
    first_nodes: list[int] = []
    for r, tree in enumerate(trees):
        length, first_node = len(tree.ids), len(parents)
        first_nodes.append(first_node)
        input_ids[r, :length] = torch.tensor(tree.ids, dtype=torch.long)
        position_ids[r, :length] = torch.tensor(tree.positions, dtype=torch.long)
        nodes[r, :length] = torch.tensor(tree.nodes, dtype=torch.long) + first_node
        parents += [parent + first_node if parent >= 0 else -1 for parent in tree.parents]
    return _Rows(trees, first_nodes, parents, input_ids, position_ids, nodes, sharing)


def _lm_targets(input_ids: torch.Tensor, nodes: torch.Tensor, correct_counts: dict[int, int]):
    """input_ids, nodes [R, W] -> (lm_targets [R, W] long, lm_weights [R, W] float): the next
    token inside a node that `correct_counts` (node -> count) holds, weighted by the count. The
    next token of a step end lies in another node (or there are several), so it is not a target."""
    weight_of = torch.zeros(max(nodes.max().item() + 2, 1), dtype=torch.float)
    if correct_counts:
        weight_of[list(correct_counts)] = torch.tensor(list(correct_counts.values()), dtype=torch.float)
    same_node = (nodes[:, :-1] == nodes[:, 1:]) & (nodes[:, :-1] >= 0)
    weights = torch.zeros(nodes.shape, dtype=torch.float)
    weights[:, :-1] = torch.where(same_node, weight_of[nodes[:, :-1].clamp(min=0)], 0.0)
    targets = torch.full(nodes.shape, -100, dtype=torch.long)
    targets[:, :-1] = torch.where(weights[:, :-1] > 0, input_ids[:, 1:], -100)
    return targets, weights


@dataclass
class _PrefixTree:
    """One row: every distinct (prompt, step, step, ...) prefix of its sequences once.

    ids, positions, nodes: per row token, its id, its position in its sequence and its node.
    parents[node]: the node it continues (-1 for a root: a prompt, or the first step of a
    sequence without one). labels: row index -> [sum of labels, number of sequences labelled
    there]; correct: row index -> how many of those labels are correct (>= 0.5). outcomes:
    feature index -> row index; step_ends: feature index -> row index of each of its labelled
    steps' ends, in order; token_rows: feature index -> row index of each of its tokens.
    """

    ids: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    nodes: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    labels: dict[int, list[float]] = field(default_factory=dict)
    correct: dict[int, int] = field(default_factory=dict)
    outcomes: dict[int, int] = field(default_factory=dict)
    step_ends: dict[int, list[int]] = field(default_factory=dict)
    token_rows: dict[int, list[int]] = field(default_factory=dict)


def _prefix_tree(features: Sequence[dict], members: list[int]) -> _PrefixTree:
    """The sequences `members` as one row of prefix trees (one tree per distinct prompt).

    Nodes are the prompt, each labelled step, and the unlabelled tail a truncation may leave.
    A node is keyed by its parent and its ids, so solutions that agree on the first k steps
    share those nodes, and a duplicated solution adds no tokens, only label counts. A node's
    tokens come after its parent's in the row, so causal order holds along every path.
    """
    tree = _PrefixTree()
    children: dict[tuple[int, tuple[int, ...]], int] = {}
    ends: list[int] = []  # row index of each node's last token
    for index in members:
        feature = features[index]
        ids = feature["input_ids"]
        labels = dict(zip(feature["label_positions"], feature["labels"]))
        cuts = [feature.get("prompt_length", 0)] + [end + 1 for end in feature["label_positions"]] + [len(ids)]
        parent, start = -1, 0
        for cut in cuts:
            if cut <= start:
                continue
            key = (parent, tuple(ids[start:cut]))
            node = children.get(key)
            if node is None:
                node = children[key] = len(tree.parents)
                tree.parents.append(parent)
                tree.ids += ids[start:cut]
                tree.positions += range(start, cut)
                tree.nodes += [node] * (cut - start)
                ends.append(len(tree.ids) - 1)
            tree.token_rows.setdefault(index, []).extend(range(ends[node] - (cut - start) + 1, ends[node] + 1))
            if cut - 1 in labels:
                tree.step_ends.setdefault(index, []).append(ends[node])
                total = tree.labels.setdefault(ends[node], [0.0, 0])
                total[0] += labels[cut - 1]
                total[1] += 1
                tree.correct[ends[node]] = tree.correct.get(ends[node], 0) + is_true_label(labels[cut - 1])
            if cut - 1 == feature["outcome_position"]:
                tree.outcomes[index] = ends[node]
            parent, start = node, cut
    return tree


def _units(features: Sequence[dict], solutions_per_row: int) -> list[list[int]]:
    """Feature indices that share a prefix tree: sequences with the same prompt ids, up to
    `solutions_per_row` of them; a sequence with no step after its prompt stays alone."""
    units: list[list[int]] = []
    open_units: dict[tuple[int, ...], list[int]] = {}
    for index, feature in enumerate(features):
        prompt_length = feature.get("prompt_length", 0)
        if not 0 < prompt_length < len(feature["input_ids"]):
            units.append([index])
            continue
        key = tuple(feature["input_ids"][:prompt_length])
        unit = open_units.get(key)
        if unit is None or len(unit) == solutions_per_row:
            unit = open_units[key] = []
            units.append(unit)
        unit.append(index)
    return units


def _pack(features: Sequence[dict], units: list[list[int]]) -> list[list[int]]:
    """Units -> rows, first fit by decreasing size into rows as wide as the widest unit, so short
    units (a lone solution) fill the room beside others instead of padding. Trees of different
    prompts in one row never see each other (`_tree_mask`)."""
    sizes = [len(_prefix_tree(features, unit).ids) for unit in units]
    width = max(sizes)
    rows: list[list[int]] = []
    room: list[int] = []
    for unit in sorted(range(len(units)), key=lambda u: -sizes[u]):
        row = next((r for r, free in enumerate(room) if free >= sizes[unit]), None)
        if row is None:
            rows.append([])
            room.append(width)
            row = len(rows) - 1
        rows[row] += units[unit]
        room[row] -= sizes[unit]
    return rows


def _tree_mask(nodes: torch.Tensor, parents: list[int]) -> torch.Tensor:
    """nodes [R, W] (node of each token, -1 = pad), parents[node] -> [R, W, W] bool: a token
    sees the earlier tokens of its own node and of the nodes on its path to the root; a pad sees
    itself only (a row of the mask with no True would give NaN in attention)."""
    on_path = torch.eye(len(parents), dtype=torch.bool)  # on_path[n, m]: m is n or an ancestor of n
    for node, parent in enumerate(parents):
        if parent >= 0:
            on_path[node] |= on_path[parent]  # parents are numbered before their children
    width = nodes.shape[1]
    real = nodes >= 0
    query, key = nodes.clamp(min=0).unsqueeze(2), nodes.clamp(min=0).unsqueeze(1)
    visible = on_path[query, key] & real.unsqueeze(1) & real.unsqueeze(2)
    visible &= torch.ones(width, width, dtype=torch.bool).tril()
    return visible | torch.eye(width, dtype=torch.bool)


def is_causal_decoder(model) -> bool:
    """True when every attention layer of the backbone is causal (decoder-only models).

    Batches are right-padded, so in a causal model no real token can see a pad token: the
    attention mask changes nothing we read and is left out, which lets attention take its
    plain causal path (faster). Bidirectional backbones keep the mask.
    """
    flags = [module.is_causal for module in model.modules() if isinstance(getattr(module, "is_causal", None), bool)]
    return bool(flags) and all(flags)


def tree_mask_unsupported(model) -> str | None:
    """Why `model` cannot take shared rows, or None when it can. Shared rows need a causal
    decoder, where the tree mask gives every token exactly the context it has in its own
    sequence, and an attention kernel that takes an arbitrary additive mask (flash-attention 2
    would ignore it)."""
    if not is_causal_decoder(model):
        return "this backbone attends both ways"
    attention = getattr(model.config, "_attn_implementation", None)
    return None if attention in ("sdpa", "eager") else f"attention {attention!r} takes no tree mask"


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A shared rows' attention mask [R, 1, W, W] bool (True = may attend) -> [R, 1, W, W] in
    `dtype` (the model's): 0 where a token may attend, the lowest finite value where not.

    transformers passes a 4-D mask to the attention kernel unchanged. sdpa would take the bool
    mask, but eager attention adds the mask to the scores (True would add 1 and mask nothing);
    the additive form is right for both. The collator keeps the bool mask (a quarter of the
    float32 size) and the batch is converted where it meets the model, on its device
    (`prm.train.model_inputs`).
    """
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, torch.finfo(dtype).min)


def collate_pairs(pairs: Sequence[dict], pad_token_id: int, solutions_per_row: int = 1) -> dict[str, torch.Tensor]:
    """Pairwise features -> one batch of 2N sequences (outcome_positions [0, N) chosen, [N, 2N)
    rejected) + margins [N]. With solutions_per_row > 1 a pair shares its prompt."""
    batch = collate_features([p["chosen"] for p in pairs] + [p["rejected"] for p in pairs], pad_token_id,
                             solutions_per_row)
    batch["margins"] = torch.tensor([p["margin"] for p in pairs], dtype=torch.float)
    return batch


def drop_labels_after_first_wrong(feature: dict, threshold: float = 0.5) -> dict:
    """The feature with only the step labels up to and including its first wrong one (label <
    threshold): the "Let's Verify Step by Step" convention, applied per sequence so that it holds
    in shared rows too. The tokens stay, so an outcome head still reads the end."""
    labels = feature["labels"]
    first_wrong = next((i for i, label in enumerate(labels) if label < threshold), len(labels) - 1)
    return {**feature, "labels": labels[:first_wrong + 1], "label_positions": feature["label_positions"][:first_wrong + 1]}


def prompt_key(feature: dict) -> tuple[int, ...]:
    """The prompt's token ids: features with equal keys can share the prompt's encoding."""
    feature = feature.get("chosen", feature)
    return tuple(feature["input_ids"][:feature.get("prompt_length", 0)])


def feature_length(feature: dict) -> int:
    if "chosen" in feature:
        return max(len(feature["chosen"]["input_ids"]), len(feature["rejected"]["input_ids"]))
    return len(feature["input_ids"])


class LengthGroupedBatchSampler:
    """Seeded batches, optionally of similar length or of solutions that share a prompt, sharded
    over processes.

    Each epoch (seed + epoch): the examples are put in units, shuffled, optionally length-grouped,
    and cut into global batches of `batch_size * num_processes`; process p takes the p-th slice of
    `batch_size` of every global batch, and `accumulation_steps` consecutive global batches make
    one optimizer step. A unit is one example, or with `prompts` and
    `solutions_per_prompt` > 1 up to that many examples with the same prompt (shuffled within
    the prompt), which then land in the same batch and can share the prompt's encoding
    (`collate_features(..., solutions_per_row)`). With `group_by_length`, units are cut into
    groups of `group_batches` optimizer steps and each group is sorted by length, longest first.
    The order depends only on the examples per optimizer step, so 2 processes x b, 1 process x 2b
    and 1 process x b x 2 accumulation steps give every optimizer step the same examples.
    Incomplete last optimizer steps are dropped.
    `set_epoch` picks the epoch; `start_batch` skips batches already consumed (resume).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, num_processes: int = 1, process_index: int = 0,
                 seed: int = 0, group_batches: int = 16, group_by_length: bool = True,
                 prompts: Sequence[Hashable] | None = None, solutions_per_prompt: int = 1,
                 accumulation_steps: int = 1):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.num_processes = num_processes
        self.process_index = process_index
        self.accumulation_steps = accumulation_steps
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
            raise ValueError(f"{len(self.lengths)} examples are fewer than one optimizer step "
                             f"({batch_size} x {num_processes} processes x {accumulation_steps} accumulation steps)")

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch

    def __len__(self) -> int:
        """Micro-batches per epoch (of each process)."""
        step = self.batch_size * self.num_processes * self.accumulation_steps
        return len(self.lengths) // step * self.accumulation_steps

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
            group = global_size * self.accumulation_steps * self.group_batches
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
