"""The floor plan, enforced: every module imports only its own layer or the layers below it.

Layer order (DESIGN.md), lowest first; a module may import its own row and the rows above it:

    0  tasks.math     records, one reader per record kind, step splitting, synthetic task, protocols
    1  verifiers      safe parser, step checks, answers (`is_correct`), automatic labels
    2  generation     policy backends (HF with KV caches, vLLM), hub aliases, tiny models, policy loading
    3  prm            reward-model core: modelling, encoding, collation, losses, training, scoring, SFT,
                      recipe plumbing (everything under prm/ except prm.ppo)
    4  search         best-of-N, voting, beam search / DVTS, evaluation, plots, rejection sampling
    5  prm.ppo        PPO with dense per-step rewards, credit assignment; integrations (verl)
    6  commands       the `prm` command line, `prm demo` and its report, every subcommand's entry point

Imports inside functions count too (a lazy import is still a dependency), and no two modules may
import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tasks", "verifiers", "generation", "prm", "search", "integrations", "commands")


def layer_of(module: str) -> int | None:
    """The layer number of a dotted module name of ours, None for third-party modules."""
    if module == "tasks" or module.startswith("tasks."):
        return 0
    if module == "prm.ppo" or module.startswith("prm.ppo.") or module.split(".")[0] == "integrations":
        return 5
    order = {"verifiers": 1, "generation": 2, "prm": 3, "search": 4, "commands": 6}
    return order.get(module.split(".")[0])


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imported_modules(source: str, own: str, is_package: bool = False) -> set[str]:
    """Every module of ours that `source` (module `own`) imports anywhere in its body."""
    package = own if is_package else own.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            stem = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            # `from prm import ppo` imports the module prm.ppo; `from prm import load`, a name of prm.
            names = [f"{stem}.{alias.name}" if is_module(f"{stem}.{alias.name}") else stem for alias in node.names]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] in PACKAGES)
    found.discard(own)
    return found


def imports_of(path: Path) -> set[str]:
    return imported_modules(path.read_text(), module_name(path), path.name == "__init__.py")


def our_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")) if (ROOT / package).is_dir() else []:
            modules[module_name(path)] = path
    return modules


def test_layer_of_names_the_design_order():
    assert [layer_of(m) for m in ("tasks.math.types", "verifiers.steps", "generation.policy", "prm.scoring",
                                  "search.beam", "prm.ppo.train", "commands.cli")] == [0, 1, 2, 3, 4, 5, 6]
    assert layer_of("torch") is None


def test_no_module_imports_a_layer_above_its_own():
    violations = []
    for name, path in our_modules().items():
        own = layer_of(name)
        for imported in imports_of(path):
            if (layer_of(imported) or 0) > own:
                violations.append(f"{name} (layer {own}) imports {imported} (layer {layer_of(imported)})")
    assert not violations, "\n".join(violations)


def test_no_two_modules_import_each_other():
    modules = our_modules()
    imports = {name: imports_of(path) for name, path in modules.items()}
    cycles = sorted({tuple(sorted((a, b))) for a, targets in imports.items() for b in targets
                     if a in imports.get(b, set()) and not (a.startswith(b + ".") or b.startswith(a + "."))})
    assert not cycles, cycles


def test_the_checker_sees_lazy_and_relative_imports():
    source = "from . import answers\ndef f():\n    from search.rerank import best_of_n\n    import prm.scoring\n"
    assert imported_modules(source, "verifiers.steps") == {"verifiers.answers", "search.rerank", "prm.scoring"}
