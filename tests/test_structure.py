"""The package's shape: imports point one way (no cycles, lazy imports included)."""

import ast
from pathlib import Path

import llenhance

PACKAGE = Path(llenhance.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every llenhance module -> the llenhance modules it imports anywhere in its code (the
    package root, which only holds the version and lazy exports, is left out)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                if target in modules and target not in ("llenhance", name):
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_lazy_imports():
    graph = import_graph()
    assert "llenhance.hub" in graph["llenhance.weights"]  # imported inside a function
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_hub_downloads_without_knowing_weights():
    assert not {"llenhance.weights", "llenhance.publish"} & import_graph()["llenhance.hub"]


def test_train_options_are_the_config_fields():
    """The CLI is built from TrainConfig: every declared field is an option with its default
    and help, and nothing is copied by hand."""
    import dataclasses

    import typer.main

    from llenhance.cli import app
    from llenhance.train_config import TrainConfig

    command = typer.main.get_command(app).commands["train"]
    params = {p.name: p for p in command.params}
    declared = [f for f in dataclasses.fields(TrainConfig) if "help" in f.metadata]
    assert {f.name for f in declared} | {"resume", "quiet", "verbose", "debug"} == set(params)
    for spec in declared:
        assert params[spec.name].help == spec.metadata["help"]
        if spec.default is not dataclasses.MISSING and not spec.metadata.get("unset"):
            assert params[spec.name].default == spec.default, spec.name
    assert params["data"].required
    assert "command" not in params and "max_bad_steps" not in params
