"""The package's layout is a promise (docs/development.md): few top-level modules, layers that only
import downward, and a pure-math ``stereo`` package that imports neither Lightning nor diffusers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stereo_lit"

# Lower number = lower layer. A unit may import its own layer's peers only where listed below,
# and anything of a lower layer. Top-level modules are units of their own.
LAYERS: dict[str, int] = {
    "errors": -1,  # UserError: raised by every layer
    "stereo": 0,
    "io": 1,
    "depth": 2,
    "generators": 3,
    "diffusion": 4,
    "options": 5,  # plain option dataclasses over the layers below
    "metrics": 6,
    "data": 7,
    "evaluation": 8,
    "predict": 9,  # the predict half of the model and the direct run, without Lightning
    "callbacks": 10,
    "progress": 10,
    "quiet": 10,
    "module": 11,
    "commands": 12,
    "ui": 12,
    "cli": 13,
}
#: same-layer imports allowed: (importer, imported)
PEERS: set[tuple[str, str]] = set()
PURE = {"stereo"}
FORBIDDEN_IN_PURE = ("lightning", "pytorch_lightning", "diffusers", "transformers", "peft", "gradio")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[str]:
    """Every absolute module an import statement in ``path`` names, function-level imports included."""
    names: list[str] = []
    module = _module_name(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if path.name == "__init__.py" else 0)]
                names.append(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                names.append(node.module)
    return names


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_at_most_eight_top_level_modules() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, f"stereo_lit/ holds {len(top)} modules: {top}; move the new one into a subpackage"


def test_every_unit_has_a_layer() -> None:
    units = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    units |= {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert units <= set(LAYERS), f"add {sorted(units - set(LAYERS))} to LAYERS (and to docs/development.md)"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_downward(path: Path) -> None:
    unit = _unit(_module_name(path))
    if unit == "__init__":
        return
    upward = []
    for name in _imports(path):
        if not name.startswith("stereo_lit."):
            continue
        target = _unit(name)
        if target != unit and target in LAYERS and LAYERS[target] >= LAYERS[unit] and (unit, target) not in PEERS:
            upward.append(f"{name} ({target}, layer {LAYERS[target]})")
    assert not upward, f"{path.relative_to(PACKAGE)} (layer {LAYERS[unit]}, {unit}) imports upward: {upward}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "stereo").rglob("*.py")), ids=lambda p: p.name)
def test_pure_math_imports_no_framework(path: Path) -> None:
    bad = [n for n in _imports(path) if n.split(".")[0] in FORBIDDEN_IN_PURE]
    assert not bad, f"stereo/{path.name} is pure math but imports {bad}"


def test_no_import_cycles_between_units() -> None:
    graph: dict[str, set[str]] = {}
    for path in SOURCES:
        unit = _unit(_module_name(path))
        for name in _imports(path):
            if name.startswith("stereo_lit.") and _unit(name) != unit:
                graph.setdefault(unit, set()).add(_unit(name))
    seen: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if seen.get(nxt) == 1:
                raise AssertionError(f"import cycle: {' -> '.join(stack + [node, nxt])}")
            if nxt not in seen:
                visit(nxt, stack + [node])
        seen[node] = 2

    for unit in sorted(graph):
        if unit not in seen:
            visit(unit, [])
