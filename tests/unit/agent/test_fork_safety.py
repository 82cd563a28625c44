"""Where the agent may start threads and fork (docs/agent.md, "Process model").

The gunicorn master forks workers, so it must never have a second thread;
the only thread the agent starts is the readiness watch inside a worker,
and every child process is fork+exec'd by ``subprocess`` without Python
code in between (no ``preexec_fn``, no bare ``os.fork``).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "amphora_agent"
MODULES = sorted(PACKAGE.rglob("*.py"))
# readiness.py runs in the worker (post_worker_init), after the fork.
THREAD_STARTERS = {"readiness.py"}


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _name(func: ast.expr) -> str:
    return ast.unparse(func)


def test_the_package_is_scanned() -> None:
    assert {p.name for p in MODULES} >= {"server.py", "heartbeat.py", "heartbeat_service.py",
                                         "readiness.py", "app.py"}


def test_threads_are_started_only_in_the_worker() -> None:
    starters = set()
    for path in MODULES:
        for call in _calls(ast.parse(path.read_text())):
            if _name(call.func) in ("threading.Thread", "Thread", "threading.Timer", "Timer"):
                starters.add(str(path.relative_to(PACKAGE)))
    assert starters == THREAD_STARTERS


def test_no_bare_fork_and_no_python_between_fork_and_exec() -> None:
    offenders = []
    for path in MODULES:
        tree = ast.parse(path.read_text())
        for call in _calls(tree):
            if _name(call.func) in ("os.fork", "os.forkpty", "pty.fork"):
                offenders.append(f"{path.name}: {_name(call.func)}")
            if any(kw.arg == "preexec_fn" for kw in call.keywords):
                offenders.append(f"{path.name}: preexec_fn")
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] == "multiprocessing" for n in names):
                    offenders.append(f"{path.name}: multiprocessing")
    assert offenders == []
