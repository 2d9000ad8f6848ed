"""The architecture holds: imports go down the layers of docs/architecture.md, never up.

Read from the source's AST, so the test needs nothing imported. Layers, bottom to top:

0. ``errors``, ``validation``, ``system``: leaves.
1. ``config``: StyleConfig and the presets; knows only the leaves.
2. ``dsp``: STFT, mel, Griffin-Lim, loops, resampling, levels, bandwidth.
3. ``io`` (files), ``networks`` (feature networks).
4. ``objective`` (losses), ``solver`` (optimisation loops).
5. ``pipeline``: stylize() and its stages.
6. ``batch``, ``plots``, ``report``, ``scores``: built on the public API and the layers below.

The front ends (``cli/``) import only the public API: the package itself and its public
namespaces. The library never imports a front end, and tests never import benchmarks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "audiostyle"
FRONT_ENDS = ROOT / "cli"

#: Layer of each top-level name under ``audiostyle``.
LAYERS = {
    "errors": 0,
    "validation": 0,
    "system": 0,
    "config": 1,
    "dsp": 2,
    "io": 3,
    "networks": 3,
    "objective": 4,
    "solver": 4,
    "pipeline": 5,
    "batch": 6,
    "models": 6,
    "plots": 6,
    "report": 6,
    "scores": 6,
}
#: What a front end may import: the package and its public namespaces.
PUBLIC = {"audiostyle", "audiostyle.io", "audiostyle.batch", "audiostyle.plots", "audiostyle.report", "audiostyle.scores"}


def _module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """Absolute names of every module ``path`` imports (relative imports resolved), with lines."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((module, node.lineno))
            # "from audiostyle import io" imports the module audiostyle.io.
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                if candidate.startswith("audiostyle.") and _is_module(candidate):
                    found.append((candidate, node.lineno))
    return found


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "audiostyle" or len(parts) < 2:
        return None
    return LAYERS.get(parts[1])


def _sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _violations() -> list[str]:
    problems = []
    for path in _sources(LIBRARY):
        name = _module_name(path)
        own = _layer(name)
        for module, line in _imports(path):
            where = f"{path.relative_to(ROOT)}:{line} imports {module}"
            if module.split(".")[0] in ("audiostyle_cli", "cli"):
                problems.append(f"{where} (the library never imports a front end)")
                continue
            theirs = _layer(module)
            if own is None or theirs is None:
                if module.startswith("audiostyle.") and theirs is None:
                    problems.append(f"{where} (a module with no layer: add it to LAYERS)")
                continue
            same_package = module.split(".")[:2] == name.split(".")[:2]
            if theirs > own and not same_package:
                problems.append(f"{where} (layer {theirs} above its own {own})")
        if own is None and name != "audiostyle":
            problems.append(f"{path.relative_to(ROOT)} has no layer: add it to LAYERS")
    for path in _sources(FRONT_ENDS):
        for module, line in _imports(path):
            if module.startswith("audiostyle") and module not in PUBLIC and not module.startswith("audiostyle_cli"):
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {module} (front ends use the public API)")
    for path in _sources(ROOT / "tests"):
        for module, line in _imports(path):
            if module.split(".")[0] == "benchmarks":
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {module} (tests never import benchmarks)")
    return problems


def test_imports_follow_the_layers():
    problems = _violations()
    assert not problems, "\n".join(problems)


def test_the_checker_sees_a_violation(tmp_path):
    # The checker itself: an upward import in a bottom layer is caught.
    fake = tmp_path / "audiostyle" / "errors.py"
    fake.parent.mkdir()
    fake.write_text("from .pipeline import stylize\n")
    (tmp_path / "audiostyle" / "pipeline.py").write_text("")
    globals_ = globals()
    old_root, old_library, old_front = globals_["ROOT"], globals_["LIBRARY"], globals_["FRONT_ENDS"]
    globals_.update(ROOT=tmp_path, LIBRARY=tmp_path / "audiostyle", FRONT_ENDS=tmp_path / "cli")
    try:
        (tmp_path / "tests").mkdir()
        problems = _violations()
    finally:
        globals_.update(ROOT=old_root, LIBRARY=old_library, FRONT_ENDS=old_front)
    assert any("audiostyle/errors.py:1 imports audiostyle.pipeline" in p for p in problems)


@pytest.mark.parametrize("module, layer", [("audiostyle.dsp.stft", 2), ("audiostyle.pipeline", 5), ("numpy", None)])
def test_layer_names(module, layer):
    assert _layer(module) == layer


def test_every_package_is_in_the_distribution():
    # A sub-package missing from pyproject's list installs without its files (non-editable installs).
    text = (ROOT / "pyproject.toml").read_text()
    listed = set(text.split("packages = [", 1)[1].split("]", 1)[0].replace('"', "").replace(",", " ").split())
    found = {_module_name(p.parent / "__init__.py") for p in LIBRARY.rglob("__init__.py") if "__pycache__" not in p.parts}
    found |= {name.replace("cli", "audiostyle_cli", 1) for name in (_module_name(p) for p in FRONT_ENDS.rglob("__init__.py"))}
    assert found <= listed, sorted(found - listed)
