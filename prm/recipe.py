"""Plumbing shared by the recipes (SFT, reward-model training, PPO): JSON that stays valid, the
metrics log, output folders, checkpoints and resume, and stopping on a signal. Small on purpose;
each recipe's loop stays in its own module."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def json_safe(value: Any) -> Any:
    """`value` with every NaN / inf float replaced by None, so `json.dumps` writes valid JSON
    (a metric that could not be computed, e.g. an AUC with one class, reads as null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def dumps(value: Any, **kwargs) -> str:
    """`json.dumps` that refuses NaN: non-finite floats are written as null."""
    return json.dumps(json_safe(value), allow_nan=False, **kwargs)


def require_tensorboard(enabled: bool) -> None:
    """Fail before any folder is made when tensorboard logging is asked for but not installed."""
    if enabled:
        from prm.outputs import check_report_to

        check_report_to("tensorboard")


class MetricsLogger:
    """metrics.jsonl always (one JSON object per line, flushed as written), and the trackers asked
    for (`--report_to`, through accelerate's tracker classes; see prm.outputs.Trackers)."""

    def __init__(self, output_dir: Path, tensorboard: bool = False, *, trackers: list[str] | None = None,
                 command: str = "train", config: dict | None = None):
        from prm.outputs import Trackers

        self.path = Path(output_dir) / "metrics.jsonl"
        names = list(dict.fromkeys([*(trackers or []), *(["tensorboard"] if tensorboard else [])]))
        self.trackers = Trackers(names, output_dir, command=command, config=config)

    def log(self, step: int, values: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(dumps({"step": step, **values}) + "\n")
        self.trackers.log(values, step)

    def close(self) -> None:
        self.trackers.close()


# ------------------------------------------------------------------------------ output folders and resume
RUN_FILE = "run.json"  # inside each checkpoint: what the run was made from
CHECKPOINTS = "checkpoints"  # under --output_dir, one step-N folder per checkpoint


def check_output_dir(output_dir: Path, *, overwrite: bool, resuming: bool, written: tuple[str, ...],
                     can_resume: bool = True) -> None:
    """Refuse to start a fresh run in a folder that holds something, unless told to overwrite
    (the transformers convention). Overwriting removes `written` (this recipe's own outputs, e.g.
    checkpoints/ and metrics.jsonl, glob patterns allowed), so a stale checkpoint can never be
    resumed into the new run; other files stay.
    can_resume: whether the command has a --resume to suggest."""
    import shutil

    output_dir = Path(output_dir)
    if resuming or not output_dir.is_dir() or not any(output_dir.iterdir()):
        return
    if not overwrite:
        raise ValueError(f"output folder {output_dir} is not empty; pass --overwrite_output_dir to replace its run"
                         + (", or --resume latest to continue it" if can_resume else ""))
    for pattern in written:
        for target in output_dir.glob(pattern):
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)


# What `save_pretrained` of a model and its tokenizer writes (and a peft adapter/ folder): an
# overwritten run removes them, so that no earlier weights sit beside, or stand in for, the new
# run's (a run stopped before its final save left the old model in place).
MODEL_FILES = ("config.json", "generation_config.json", "*.safetensors", "*.safetensors.index.json", "tokenizer*",
               "special_tokens_map.json", "added_tokens.json", "vocab.*", "merges.txt", "chat_template.jinja", "adapter")


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (the data fingerprint of a run)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_fingerprint(name_or_path: str | None) -> dict[str, Any] | None:
    """What tells one saved model from another under the same name: `file_fingerprint` of each
    model file (`MODEL_FILES`) of a local directory, by relative path; None for anything else
    (a hub id or an alias, whose files are not read here; "verifier")."""
    from generation.hub import file_fingerprint

    if not name_or_path or not Path(name_or_path).is_dir():
        return None
    root = Path(name_or_path)
    paths = {path for pattern in MODEL_FILES for path in root.glob(pattern)}
    files = sorted(file for path in paths for file in ([path] if path.is_file() else path.rglob("*")) if file.is_file())
    return {str(file.relative_to(root)): file_fingerprint(file) for file in files}


def run_fingerprint(config: Any, *, ignore: tuple[str, ...], data_fields: tuple[str, ...],
                    model_fields: tuple[str, ...] = ()) -> dict[str, Any]:
    """The config fields that decide a run's result (all but `ignore`), plus a digest of each
    data file named by `data_fields` and the `model_fingerprint` of each model named by
    `model_fields` (a model retrained in place is another run); two runs with equal
    fingerprints train the same model."""
    from dataclasses import asdict

    fields = {key: value for key, value in asdict(config).items() if key not in ignore}
    for name in data_fields:
        value = getattr(config, name, None)
        if value and Path(value).is_file():
            fields[f"{name}_sha256"] = file_digest(value)
    for name in model_fields:
        fields[f"{name}_files"] = model_fingerprint(getattr(config, name, None))
    return json_safe(fields)


def saved_config(config: Any) -> dict[str, Any]:
    """The config as a run saves it for `--config` (train_config.json, ...): what the run did,
    without what it was allowed to do to its folder. A repeat with `--config` neither resumes nor
    replaces a run unless asked again (a saved `overwrite_output_dir: true` wiped the folder)."""
    from dataclasses import asdict

    values = asdict(config)
    for key, off in (("resume", None), ("overwrite_output_dir", False)):
        if key in values:
            values[key] = off
    return values


def write_run_file(checkpoint_dir: Path, fingerprint: dict[str, Any], run_file: str = RUN_FILE) -> None:
    (Path(checkpoint_dir) / run_file).write_text(dumps(fingerprint, indent=2, sort_keys=True) + "\n")


def fingerprint_differences(stored: dict[str, Any], now: dict[str, Any], earlier: str) -> list[str]:
    """One line per key whose value differs between a stored fingerprint and this run's."""
    return [_difference(key, stored.get(key), now.get(key), earlier)
            for key in sorted(set(stored) | set(now)) if stored.get(key) != now.get(key)]


def _difference(key: str, before: Any, now: Any, earlier: str) -> str:
    """One difference of two fingerprints; of two `model_fingerprint`s, the files that differ
    (all their fingerprints would not fit on the line)."""
    if isinstance(before, dict) and isinstance(now, dict):
        changed = sorted(name for name in set(before) | set(now) if before.get(name) != now.get(name))
        return f"{key}: the files {', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''} differ from the {earlier}'s"
    def short(value: Any) -> str:
        return f"the files of a local model ({len(value)})" if isinstance(value, dict) else repr(value)

    return f"{key}: {earlier} {short(before)}, now {short(now)}"


def check_resume(checkpoint_dir: Path, fingerprint: dict[str, Any], run_file: str = RUN_FILE) -> None:
    """Refuse a checkpoint made by a different run, naming what differs. `run_file`: the name of
    the record inside `checkpoint_dir` (a command whose output is a file keeps it beside the file)."""
    path = Path(checkpoint_dir) / run_file
    if not path.is_file():
        raise ValueError(f"{checkpoint_dir} records no {run_file}, so it cannot be checked against this run; "
                         "start a fresh run (--overwrite_output_dir)")
    stored = json.loads(path.read_text())
    # A record beside an output file (<output>.run.json) speaks for that file, not its folder.
    made, earlier = ((checkpoint_dir, "checkpoint") if run_file == RUN_FILE
                     else (Path(checkpoint_dir) / run_file.removesuffix(".run.json"), "earlier output"))
    differences = fingerprint_differences(stored, fingerprint, earlier)
    if differences:
        raise ValueError(f"{made} was made by a different run ({'; '.join(differences)})")


def resume_choice(value: Any) -> str | None:
    """One meaning of `--resume` in every command: None (a fresh run), "latest" (continue the run
    recorded in the output folder or file) or a checkpoint directory. `True` (the Python API's
    old boolean form) means "latest"."""
    if value is None or value is False or value == "":
        return None
    if value is True or str(value).lower() in ("true", "1", "yes"):
        return "latest"
    return str(value)


def checkpoint_path(output_dir: Path, step: int) -> Path:
    return Path(output_dir) / CHECKPOINTS / f"step-{step}"


def latest_checkpoint(output_dir: Path) -> Path:
    """The newest complete checkpoint under output_dir/checkpoints (a `.partial` save is not one)."""
    steps = [int(path.name[len("step-"):]) for path in (Path(output_dir) / CHECKPOINTS).glob("step-*")
             if path.is_dir() and path.name[len("step-"):].isdigit()]
    if not steps:
        raise FileNotFoundError(f"--resume latest: no checkpoint under {Path(output_dir) / CHECKPOINTS}")
    return checkpoint_path(output_dir, max(steps))


def checkpoint_to_resume(output_dir: Path, resume: Any) -> Path | None:
    """The checkpoint `--resume` names (see `resume_choice`): None for a fresh run, the newest one
    under output_dir/checkpoints for "latest", else the directory given."""
    choice = resume_choice(resume)
    if choice is None:
        return None
    if choice == "latest":
        return latest_checkpoint(output_dir)
    if not Path(choice).is_dir():
        raise FileNotFoundError(f"--resume {choice}: no such checkpoint directory (or pass --resume latest)")
    return Path(choice)


@contextmanager
def saved_atomically(directory: Path) -> Iterator[Path]:
    """Yield `<directory>.partial` to write a checkpoint into; it becomes `directory` only once the
    block finished, so an interrupted save never leaves a half-written checkpoint to resume."""
    import shutil

    directory = Path(directory)
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    yield partial
    if directory.exists():
        shutil.rmtree(directory)
    partial.rename(directory)


def keep_log_until(path: Path, step: int, key: str = "step") -> None:
    """Drop the lines of a metrics log written after `step`: a run resumed from `step` redoes those
    steps and logs them again, so the log ends up as an uninterrupted run's."""
    path = Path(path)
    if not path.is_file():
        return
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    path.write_text("".join(line + "\n" for line in lines if json.loads(line)[key] <= step), encoding="utf-8")


def check_output_file(path: Path, *, overwrite: bool, resuming: bool, flag: str = "--overwrite_output") -> None:
    """`check_output_dir` for a command whose output is one file: refuse to replace a non-empty
    file unless told to overwrite it (or to resume it)."""
    path = Path(path)
    if resuming or overwrite or not path.is_file() or path.stat().st_size == 0:
        return
    raise ValueError(f"output file {path} exists; pass {flag} to replace it"
                     + (", or --resume latest to continue it" if flag == "--overwrite_output" else ""))


def start_output_file(path: Path, fingerprint: dict[str, Any], *, overwrite: bool, resume: Any) -> int:
    """Get a one-line-per-record output file ready to be written; returns how many records it
    already holds (0 for a fresh output).

    An existing output is refused unless `overwrite` or `resume` ("latest"; `resume_choice`)
    is given. Resuming checks the run record beside the file (``<name>.run.json``, what the
    output was made from) and cuts off a last line that an interrupt left half-written. The
    run record is (re)written either way.
    """
    path = Path(path)
    resume = resume_choice(resume)
    if resume not in (None, "latest"):
        raise ValueError(f"--resume takes 'latest' (continue the output file), got {resume!r}")
    check_output_file(path, overwrite=overwrite, resuming=bool(resume))
    run_file = path.name + ".run.json"
    done = 0
    if resume and path.is_file():
        check_resume(path.parent, fingerprint, run_file=run_file)
        data = path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            path.write_bytes(complete)
        done = sum(1 for line in complete.splitlines() if line.strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    if not done:
        path.write_bytes(b"")
    write_run_file(path.parent, fingerprint, run_file=run_file)
    return done


def resume_command(command: str, config: Any) -> str:
    """The command line that continues `config`'s run: every option that differs from its
    default, then `--resume latest` (how an interrupted run tells a person to go on)."""
    import shlex
    from dataclasses import MISSING, fields

    parts = ["prm", command]
    for item in fields(config):
        if item.name in ("resume", "overwrite_output_dir", "overwrite_output"):
            continue
        value = getattr(config, item.name)
        default = item.default if item.default is not MISSING else (
            item.default_factory() if item.default_factory is not MISSING else MISSING)
        if value == default and default is not MISSING:
            continue
        if isinstance(value, bool):
            parts.append(f"--{item.name}" if value else f"--no_{item.name}")
        elif value is not None:
            parts += [f"--{item.name}", shlex.quote(str(value))]
    return " ".join(parts + ["--resume", "latest"])


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT / SIGTERM after saving a checkpoint; the message says how to resume."""


def interrupted(stop: "StopSignals", step: int, total: int, saved_to: Path, command: str, config: Any,
                unit: str = "step") -> Interrupted:
    """The `Interrupted` a recipe raises once it saved `saved_to` at `step` of `total` (`unit`: what
    the recipe counts, e.g. PPO's updates)."""
    return Interrupted(f"{stop.requested or 'stopped'} at {unit} {step} of {total}; checkpoint saved to {saved_to}; "
                       f"resume with: {resume_command(command, config)}")


def save_or_stop(accelerator, stop: "StopSignals", clock: "SaveClock", step: int) -> tuple[bool, bool]:
    """(save a checkpoint now, stop after it), the same on every process, which then save and stop
    together: any process's stop signal counts, and the main process's clock alone says when a
    periodic checkpoint is due (clocks of different processes disagree near the deadline, and a
    save some processes skip hangs the others in its collectives)."""
    import torch

    due = accelerator.is_main_process and clock.due(step)
    flags = torch.tensor([1.0 if stop.requested else 0.0, 1.0 if due else 0.0], device=accelerator.device)
    if accelerator.num_processes > 1:
        flags = accelerator.reduce(flags, reduction="sum")
    stopping = bool(flags[0].item() > 0)
    return stopping or bool(flags[1].item() > 0), stopping


class StopSignals:
    """While active, SIGINT and SIGTERM only ask the loop to stop (`requested`), so it can save a
    checkpoint at the end of the current step; a second signal stops at once. Does nothing
    outside the main thread (signal handlers can only be set there)."""

    def __init__(self):
        self.requested: str | None = None
        self._previous: dict = {}

    def __enter__(self) -> "StopSignals":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number, frame) -> None:
        import signal

        if self.requested is not None:
            raise KeyboardInterrupt
        self.requested = signal.Signals(number).name
        import sys

        print(f"\n{self.requested}: stopping after this step to save a checkpoint (again to stop at once)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        import signal

        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}


class SaveClock:
    """When a periodic checkpoint is due: every `every` steps (0 = off) or every `minutes` of
    wall time (0 = off), whichever comes first."""

    def __init__(self, every: int, minutes: float):
        import time

        self.every, self.seconds = every, minutes * 60
        self.last = time.monotonic()

    def due(self, step: int) -> bool:
        import time

        if self.every and step % self.every == 0:
            return True
        return bool(self.seconds) and time.monotonic() - self.last >= self.seconds

    def saved(self) -> None:
        import time

        self.last = time.monotonic()


class ThroughputMeter:
    """Tokens per second and mean loss of a training loop, per logging window and for the run.

    `add(tokens, computed, slots, loss)` once per optimizer step: tokens of the training
    sequences, tokens computed in the batch rows (shared prefixes once), and row slots (rows x
    width). Time inside `paused()` (evaluation, checkpoints) is not training time.
    """

    def __init__(self):
        import time

        self._clock = time.perf_counter
        self.run_tokens = self.run_computed = self.run_slots = 0
        self.run_start, self.paused_seconds = self._clock(), 0.0
        self.last_loss = float("nan")
        self.new_window()

    def new_window(self) -> None:
        self.window_tokens, self.window_start, self.window_losses = 0, self._clock(), []

    def add(self, tokens: int, computed: int, slots: int, *, loss: float) -> None:
        self.window_tokens += tokens
        self.run_tokens, self.run_computed, self.run_slots = (self.run_tokens + tokens, self.run_computed + computed,
                                                               self.run_slots + slots)
        self.last_loss = loss
        self.window_losses.append(loss)

    def window(self) -> dict[str, float]:
        """The mean loss and tokens/s since the window began."""
        elapsed = self._clock() - self.window_start
        return {"loss": sum(self.window_losses) / max(1, len(self.window_losses)),
                "tokens_per_s": self.window_tokens / max(elapsed, 1e-9)}

    @contextmanager
    def paused(self):
        start = self._clock()
        try:
            yield
        finally:
            self.paused_seconds += self._clock() - start

    def summary(self) -> dict[str, float]:
        """Training time, tokens and tokens/s of the whole run, the share of row slots that were
        padding, and the share of tokens that prompt sharing did not compute."""
        seconds = self._clock() - self.run_start - self.paused_seconds
        return {"train_seconds": seconds, "train_tokens": self.run_tokens,
                "train_tokens_per_s": self.run_tokens / max(seconds, 1e-9),
                "padding_fraction": 1 - self.run_computed / max(self.run_slots, 1),
                "prompt_sharing_saving": 1 - self.run_computed / max(self.run_tokens, 1)}
