"""The layering DESIGN.md promises, checked on the import graph.

The agent never imports the master (and vice versa); docker only under
agent/runtime/; sqlite3 and etcd only under master/store/; grpc only at the
edges (servicers, clients, the server, the agent's session, the etcd client).
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


def test_etcd_is_reached_only_by_the_store() -> None:
    assert _offenders("master", "aetcd", ("master/store/",)) == []


def test_grpc_stays_at_the_edges() -> None:
    edges = (
        "master/api/",
        "master/cli/client.py",
        "master/cli/commands.py",
        "master/server.py",
        # The etcd client is the store's edge, as sqlite3 is SqliteStore's.
        "master/store/etcd_client.py",
        "master/store/etcd_lease.py",
    )
    assert _offenders("master", "grpc", edges) == []
    for pure in ("master/app", "master/controllers", "master/scheduler", "master/manifest"):
        assert _offenders(pure, "grpc", ()) == []
        assert _offenders(pure, "protos", ()) == []


def test_the_pure_core_does_no_io() -> None:
    for pure in ("master/app", "master/controllers", "master/scheduler", "master/manifest"):
        for module in ("socket", "subprocess", "sqlite3", "docker", "asyncio"):
            allowed = ("master/controllers/manager.py",) if module == "asyncio" else ()
            assert _offenders(pure, module, allowed) == [], (pure, module)


def _master_imports(path: Path) -> set[str]:
    """The master packages (or top-level modules) one module imports, e.g. {"lb", "model"}."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
            if node.module == "master":
                modules = [f"master.{alias.name}" for alias in node.names]
        else:
            continue
        names.update(m.split(".")[1] for m in modules if m.startswith("master."))
    return names


def _master_unit(path: Path) -> str:
    """The package a module belongs to under master/ ("lb", "api", ...) or its own name."""
    parts = path.relative_to(REPO / "master").parts
    return parts[0].removesuffix(".py")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_master_packages_import_each_other_without_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for path in _modules("master"):
        unit = _master_unit(path)
        graph.setdefault(unit, set()).update(_master_imports(path) - {unit})
    assert "lb" in graph and "controllers" in graph  # the walk found the packages
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_load_balancer_core_is_pure() -> None:
    pure = (
        "render.py",
        "plan.py",
        "slots.py",
        "model.py",
        "endpoints.py",
        "conflicts.py",
        "pool.py",
        "adopt.py",
        "ingress.py",
        "ingress_tls.py",
        "render_ingress.py",
    )
    io_modules = {"socket", "subprocess", "asyncio", "os", "shutil", "signal", "tempfile"}
    io_modules |= {"grpc", "protos", "sqlite3", "docker"}
    for name in pure:
        path = REPO / "master" / "lb" / name
        assert _imports(path) & io_modules == set(), name
        # Only data: the LB's own pure modules and the cluster model.
        assert _master_imports(path) <= {"lb", "model"}, name
        lb_modules = {
            n.module
            for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("master.lb.")
        }
        assert lb_modules <= {f"master.lb.{m.removesuffix('.py')}" for m in pure}, name


def test_the_kernel_imports_nothing_of_ours_and_both_sides_may_use_it() -> None:
    for ours in ("master", "agent", "protos", "tests"):
        assert _offenders("kernel", ours, ()) == [], ours
    for third_party in ("grpc", "docker", "yaml", "psutil", "cryptography"):
        assert _offenders("kernel", third_party, ()) == [], third_party
    # One test bind, made as HAProxy binds, asked by both sides' HAProxies.
    assert _offenders("kernel", "socket", ("kernel/bindprobe.py",)) == []
    # The clock's sleep, and the wait for a stopped grpc.aio server's calls' tasks (found by
    # the names gRPC gives them, without importing grpc) that master and agent both need.
    assert _offenders("kernel", "asyncio", ("kernel/clock.py", "kernel/rpc_tasks.py")) == []


def test_the_agents_state_machine_is_pure() -> None:
    pure = ["agent/state", "agent/sync.py", "agent/status.py", "agent/probes.py"]
    pure.append("agent/fencing.py")
    pure += ["agent/nodeproxy/render.py", "agent/nodeproxy/slots.py", "agent/nodeproxy/plan.py"]
    for path in pure:
        for module in ("asyncio", "grpc", "docker", "socket", "subprocess", "time", "protos"):
            hits = [
                str(p.relative_to(REPO))
                for p in ([REPO / path] if path.endswith(".py") else _modules(path))
                if module in _imports(p)
            ]
            assert hits == [], (path, module)


def test_the_application_layer_knows_no_transport() -> None:
    """master/app serves the gRPC and the HTTP API alike: it imports neither."""
    for module in ("grpc", "protos", "aiohttp", "http", "urllib", "asyncio", "socket", "ssl"):
        assert _offenders("master/app", module, ()) == [], module
    assert (REPO / "master/app/apply.py").is_file() and (REPO / "master/app/reports.py").is_file()


def test_production_code_does_not_check_with_assert() -> None:
    """`python -O` drops asserts: a check that matters raises a real error."""
    paths = [p for c in ("master", "agent", "kernel") for p in _modules(c)]
    offenders = [
        f"{p.relative_to(REPO)}:{node.lineno}"
        for p in paths
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.Assert)
    ]
    assert offenders == []
