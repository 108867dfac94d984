"""The layering DESIGN.md promises, checked on the import graph.

The agent never imports the master (and vice versa); docker only under
agent/runtime/; sqlite3 only under master/store/; grpc only at the edges
(servicers, clients, the server, the agent's session).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def _offenders(package: str, module: str, allowed: tuple[str, ...]) -> list[str]:
    return [
        str(p.relative_to(REPO))
        for p in _modules(package)
        if module in _imports(p)
        and not any(str(p.relative_to(REPO)).startswith(a) for a in allowed)
    ]


def test_agent_and_master_do_not_import_each_other() -> None:
    assert _offenders("agent", "master", ()) == []
    assert _offenders("master", "agent", ()) == []


def test_docker_is_imported_only_by_the_agent_runtime() -> None:
    assert _offenders("agent", "docker", ("agent/runtime/",)) == []
    assert _offenders("master", "docker", ()) == []


def test_sqlite_is_imported_only_by_the_store() -> None:
    assert _offenders("master", "sqlite3", ("master/store/",)) == []


def test_grpc_stays_at_the_edges() -> None:
    edges = ("master/api/", "master/cli/client.py", "master/cli/commands.py", "master/server.py")
    assert _offenders("master", "grpc", edges) == []
    for pure in ("master/controllers", "master/scheduler", "master/manifest"):
        assert _offenders(pure, "grpc", ()) == []
        assert _offenders(pure, "protos", ()) == []


def test_the_pure_core_does_no_io() -> None:
    for pure in ("master/controllers", "master/scheduler", "master/manifest"):
        for module in ("socket", "subprocess", "sqlite3", "docker", "asyncio"):
            allowed = ("master/controllers/manager.py",) if module == "asyncio" else ()
            assert _offenders(pure, module, allowed) == [], (pure, module)


def test_the_kernel_imports_nothing_of_ours_and_both_sides_may_use_it() -> None:
    for ours in ("master", "agent", "protos", "tests"):
        assert _offenders("kernel", ours, ()) == [], ours
    for third_party in ("grpc", "docker", "yaml", "psutil", "cryptography", "asyncio", "socket"):
        assert _offenders("kernel", third_party, ()) == [], third_party
