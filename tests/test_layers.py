"""Imports point down the layers only: no cycle can come back.

Every import of every module of the package, lazy ones inside functions included, is
read from the source (AST) and checked against a rank table: a module may import only
modules of a strictly lower rank.  A module missing from the table fails the test, so a
new module is placed deliberately.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "coderunner"

# Layer 0: data.  _jail: runs inside the jail (standard library only).  1: the sandbox,
# host side.  2: runtimes.  3: engine.  4: services.  5: front-ends (each above the one
# it builds on).  6: the package's public surface and entry point.
RANKS: dict[str, float] = {
    "_jail": 0,
    "_jail.protocol": 0,
    "_jail.python_runner": 0.1,
    "_jail.python_forkserver": 0.2,
    "_version": 0,
    "_json": 0.05,  # fast JSON decoding on the host (uses _jail.protocol.paused_gc)
    "_errors": 0,
    "_models": 0.1,
    "_settings": 0.2,
    "_schema": 0.2,
    "_sandbox": 1,
    "_sandbox.policy": 1,
    "_sandbox.cgroup": 1,
    "_sandbox.seccomp": 1.1,
    "_sandbox.bwrap": 1.1,
    "_sandbox.process": 1.2,
    "_runtimes": 2,
    "_runtimes.python": 2,
    "_runtimes.javascript": 2,
    "_runtimes.workerd": 2,  # JavaScript's isolate mode (jailed workerd processes)
    # The library's storage: data only (_models, _errors, _settings) and its own modules.
    # Alembic loads env.py and the revisions as files (not as package modules), so they
    # import the package absolutely; they rank with the tables they build.
    "_store.tables": 2.5,
    "_store.migrations.env": 2.55,
    "_store.migrations.versions.0001_initial": 2.55,
    "_store.migrations.versions.0002_executions_by_snippet": 2.55,
    "_store.migrations.versions.0003_executions_by_time_and_id": 2.55,
    "_store.store": 2.6,
    "_store.history": 2.7,
    "_store": 2.8,  # _store/__init__.py re-exports store and history
    "_packages": 2.9,  # vetted packages: installed ahead of time, mounted by the engine
    "_pool": 3,
    "_engine": 3.1,
    "_api": 3.2,
    "_agent": 4,
    "_doctor": 4,
    "_bench": 4.6,
    "_bench_payloads": 4.5,  # its payload rows (1k-100k rows via the API and HTTP)
    "_bench_client": 0.05,  # its lean HTTP client (the standard library only)
    "_inspect": 4,
    "_library": 4.5,
    "_frontend": 5,
    "_console": 5.05,  # the web console's static files (static_dir)
    "_metrics": 5.1,
    "_tracing": 5.12,  # OpenTelemetry set-up and the server span (the engine: API only)
    "_http_errors": 5.15,
    "_mcp": 5.2,
    "_http_library": 5.25,
    "_http_console": 5.27,
    "_http": 5.3,
    "_launch": 5.4,
    "_cli_common": 5.42,
    "_cli_snippets": 5.45,
    "_cli": 5.5,
    "": 6,  # coderunner/__init__.py
    "__main__": 6.1,
}

# The in-jail modules also import each other by their top-level names inside the jail.
JAIL_TOP_LEVEL = {"protocol": "_jail.protocol", "python_runner": "_jail.python_runner"}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> set[str]:
    """The package modules `path` imports (names relative to the package root)."""
    name = module_name(path, root)
    is_package = path.name == "__init__.py"
    here = name.split(".") if name else []
    package = here if is_package else here[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                for alias in node.names:
                    # `from . import x` / `from .pkg import mod` may name a module.
                    sub = f"{target}.{alias.name}" if target else alias.name
                    found.add(
                        sub
                        if (root / Path(*sub.split("."))).exists()
                        or (root / Path(*sub.split("."))).with_suffix(".py").exists()
                        else target
                    )
            elif node.module and node.module.split(".")[0] == root.name:
                found.add(".".join(node.module.split(".")[1:]))
            elif node.module in JAIL_TOP_LEVEL:
                found.add(JAIL_TOP_LEVEL[node.module])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == root.name:
                    found.add(".".join(alias.name.split(".")[1:]))
                elif alias.name in JAIL_TOP_LEVEL:
                    found.add(JAIL_TOP_LEVEL[alias.name])
    found.discard(name)
    return found


def violations(root: Path, ranks: dict[str, float]) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        name = module_name(path, root)
        if name not in ranks:
            problems.append(f"{name or '__init__'}: not in the rank table (place it in a layer)")
            continue
        for target in sorted(imports_of(path, root)):
            if target not in ranks:
                problems.append(f"{name} imports {target}, which is not in the rank table")
            elif ranks[target] >= ranks[name]:
                problems.append(
                    f"{name or '__init__'} (rank {ranks[name]}) imports {target or '__init__'} "
                    f"(rank {ranks[target]}): imports must point down the layers"
                )
    return problems


def test_imports_point_down_the_layers() -> None:
    assert violations(PACKAGE, RANKS) == []


def test_every_module_is_ranked() -> None:
    modules = {module_name(p, PACKAGE) for p in PACKAGE.rglob("*.py")}
    assert modules - set(RANKS) == set()
    assert set(RANKS) - modules == set(), "the table names modules that do not exist"


def test_a_cycle_or_an_upward_lazy_import_is_caught(tmp_path: Path) -> None:
    """The checker itself: an upward import inside a function is a violation."""
    root = tmp_path / "coderunner"
    (root / "_sub").mkdir(parents=True)
    (root / "__init__.py").write_text("from ._low import x\n")
    (root / "_low.py").write_text("def f():\n    from ._high import y\n    return y\n")
    (root / "_high.py").write_text("from . import _low\nfrom ._sub import mod\n")
    (root / "_sub" / "__init__.py").write_text("")
    (root / "_sub" / "mod.py").write_text("import coderunner._high\n")
    ranks = {"": 9, "_low": 1, "_high": 2, "_sub": 0, "_sub.mod": 0}
    found = violations(root, ranks)
    assert any(p.startswith("_low (rank 1) imports _high") for p in found), found
    assert any(p.startswith("_sub.mod (rank 0) imports _high") for p in found), found
    assert not any(p.startswith("_high") for p in found), found
    assert violations(root, {**ranks, "_low": 3, "_sub.mod": 3}) == [
        "_high (rank 2) imports _low (rank 3): imports must point down the layers",
        "_high (rank 2) imports _sub.mod (rank 3): imports must point down the layers",
    ]
