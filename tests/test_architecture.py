"""The package's shape: no import cycle at any depth, and the inference path free of TensorFlow once converted."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """module -> the package's modules it imports, from every import statement at any depth."""
    files = {}
    for f in (root / package).rglob("*.py"):
        parts = list(f.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = f
    graph = {}
    for name, f in files.items():
        package_of = name if f.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(f.read_text(), str(f))):  # walks into functions too
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package_of.split(".")[: len(package_of.split(".")) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                candidates = [f"{module}.{alias.name}" for alias in node.names] + [module]
            else:
                continue
            for c in candidates:
                while c and c not in files:  # "digitnet.data.load_mnist" -> "digitnet.data"
                    c = c.rpartition(".")[0]
                # A module's own enclosing packages load before it whatever it imports: not an edge.
                if c and c != name and not name.startswith(c + "."):
                    found.add(c)
        graph[name] = found
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_the_checker_finds_a_cycle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "toy"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..c import g\n    return g\n")
    (pkg / "c.py").write_text("import toy.a\n\ndef g():\n    pass\n")
    (pkg / "d.py").write_text("from . import a\n")  # no cycle through d
    cycle = find_cycle(import_graph(tmp_path, "toy"))
    assert cycle is not None and set(cycle) == {"toy.a", "toy.sub.b", "toy.c"}
    (pkg / "c.py").write_text("def g():\n    pass\n")
    assert find_cycle(import_graph(tmp_path, "toy")) is None


def test_digitnet_has_no_import_cycle():
    graph = import_graph(SRC, "digitnet")
    assert len(graph) > 30 and "digitnet.inference" in graph["digitnet.export"]  # it really read the package
    assert "digitnet.runtimes" in graph["digitnet.inference"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_presets_errors_and_results_import_no_tensorflow():
    code = ("import sys; import digitnet.presets, digitnet.errors, digitnet.results, digitnet.cli, "
            "digitnet.runtimes, digitnet.inference; print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.slow
def test_evaluate_with_a_cached_tflite_model_never_imports_tensorflow(mnist, tmp_path):
    env = {**os.environ, "DIGITNET_HOME": str(tmp_path / "home")}
    convert = "from digitnet.inference import Predictor; Predictor.load(backend='tflite')"  # fills the cache
    subprocess.run([sys.executable, "-c", convert], check=True, env=env, capture_output=True)
    code = ("import sys; from digitnet.cli import main\n"
            f"rc = main(['evaluate', '--backend', 'tflite', '--report-dir', {str(tmp_path / 'report')!r}])\n"
            "print('RC', rc, 'TF', 'tensorflow' in sys.modules, 'KERAS', 'keras' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from digitnet.inference import shipped_model_path

    recorded = json.loads(shipped_model_path().with_name("metrics.json").read_text())["test"]["accuracy"]
    assert f"accuracy: {recorded * 100:.2f}%" in proc.stdout  # the shipped model's own figure, reproduced
    assert "false rejection: " in proc.stdout
    assert proc.stdout.splitlines()[-1] == "RC 0 TF False KERAS False"
