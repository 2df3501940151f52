"""The code's shape: no module over 400 lines and no function over 60 in harness/, no import
cycle between the project's modules nor between its packages, a report that imports no
torch, and no built-in strategy's name deciding what the runner or the report does."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "strategies")
MAX_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _top_level_imports(path: Path, name: str, known: set[str],
                       in_functions: bool = False) -> set[str]:
    """Project modules imported at module level (and, with `in_functions`, inside functions
    and classes too; never under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) \
                and not in_functions:
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.Import):
                found.update(a.name for a in sub.names)
            elif isinstance(sub, ast.ImportFrom):
                base = sub.module or ""
                if sub.level:
                    anchor = name.split(".")[: len(name.split(".")) - sub.level + is_pkg]
                    base = ".".join(anchor + ([base] if base else []))
                found.add(base)
                found.update(f"{base}.{a.name}" for a in sub.names)
    return {m for m in found if m in known and m != name}


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in _modules().values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these by concept: {long}"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` (node -> what it imports), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def _package(module: str) -> str:
    """harness.report.cost -> harness.report; harness.answering -> itself; strategies.x ->
    strategies."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "harness" and len(parts) > 1 else parts[0]


def _graphs(mods: dict[str, Path]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Modules by their module-level imports (a function-level import inside a package may
    defer a heavy one); packages by every import, in functions too: a package that imports
    another only when a function runs still depends on it."""
    modules = {m: _top_level_imports(p, m, set(mods)) for m, p in mods.items()}
    every = {m: _top_level_imports(p, m, set(mods), in_functions=True) for m, p in mods.items()}
    packages: dict[str, set[str]] = {}
    for m, deps in every.items():
        packages.setdefault(_package(m), set()).update(
            _package(d) for d in deps if _package(d) != _package(m))
    return modules, packages


def test_no_import_cycle_between_modules_or_packages():
    modules, packages = _graphs(_modules())
    cycle = _cycle(modules)
    assert cycle is None, " -> ".join(cycle)
    cycle = _cycle(packages)
    assert cycle is None, "packages: " + " -> ".join(cycle)


def test_the_cycle_check_can_fail(tmp_path):
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("from a import x\n")
    assert _top_level_imports(tmp_path / "a.py", "a", {"a", "b"}) == {"b"}
    assert _top_level_imports(tmp_path / "b.py", "b", {"a", "b"}) == {"a"}
    # a planted package cycle: harness.report.x imports harness.scoring.y, which imports
    # harness.report.z (as scoring/calibrate.py once imported report/runs.py) inside a
    # function (as cost/calibration.py once imported harness.tuning)
    root = tmp_path / "tree"
    for rel, text in {"harness/report/x.py": "from harness.scoring import y\n",
                      "harness/report/z.py": "",
                      "harness/scoring/y.py": "def f():\n    import harness.report.z\n",
                      "harness/scoring/w.py": ""}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    mods = {".".join(p.relative_to(root).with_suffix("").parts): p for p in root.rglob("*.py")}
    modules, packages = _graphs(mods)
    assert _cycle(modules) is None  # no module imports back the one that imports it ...
    assert _cycle(packages) == ["harness.report", "harness.scoring", "harness.report"]  # ... but
    # the packages do


def test_the_cost_package_and_the_run_reader_stand_below_their_users():
    """harness.cost runs no model (the runner passes it the calibration), and the run-record
    reader is below both the report and the tracking that read runs through it."""
    _, packages = _graphs(_modules())
    assert not packages["harness.cost"] & {"harness.models", "harness.tuning",
                                          "harness.retrieval", "harness.run", "harness.report",
                                          "harness.search", "harness.data", "harness.scoring"}
    assert not packages["harness.run_folders"] & {"harness.report", "harness.tracking"}
    assert "harness.run_folders" in packages["harness.tracking"] & packages["harness.report"]


def test_the_report_imports_no_torch():
    """harness-report reads run files only: importing it must not load torch (or a model
    library), so a report can be made where no model can run."""
    code = ("import sys, harness.report.cli, harness.report.build; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'sentence_transformers') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.strip()
    assert out == "[]", out


def _long_functions(root: Path, limit: int) -> dict[str, int]:
    out = {}
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    out[f"{path.relative_to(root.parent)}:{node.name}"] = n
    return out


def test_no_function_in_harness_is_over_60_lines():
    long = _long_functions(ROOT / "harness", MAX_FUNCTION_LINES)
    assert not long, f"split these into named steps: {long}"


def test_no_strategy_name_decides_runner_or_report_behaviour():
    """The runner and the report learn what a strategy is from the strategy and its run's
    metrics; a string equal to a built-in strategy's name would be a special case."""
    names = {yaml.safe_load(p.read_text())["name"] for p in (ROOT / "conf" / "strategy").glob("*.yaml")}
    assert names >= {"prompt", "rag", "lora", "full", "hybrid"}
    hits = []
    for path in [*(ROOT / "harness" / "run").glob("*.py"), *(ROOT / "harness" / "report").glob("*.py"),
                 ROOT / "harness" / "context.py", ROOT / "harness" / "types.py"]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in names:
                hits.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not hits, hits
