"""The import contracts in .importlinter hold, and a violating import breaks them.

The second test is what makes the first one mean something: it copies the
tree, adds one forbidden import, and expects ``lint-imports`` to fail naming it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("amphora_contract", "amphora_agent", "controller_stub", "haproxy_templates",
            "keepalived", "bench", "tests")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_tree_keeps_every_contract() -> None:
    done = _lint(REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(("module", "line", "expected"), [
    ("bench/common.py", "import tests.support.fabric", "bench.common -> tests.support.fabric"),
    ("controller_stub/client.py", "from amphora_agent import fileutil",
     "controller_stub.client -> amphora_agent.fileutil"),
    ("amphora_contract/api.py", "import controller_stub.pki",
     "amphora_contract.api -> controller_stub.pki"),
    ("amphora_agent/cli.py", "import haproxy_templates", "amphora_agent.cli -> haproxy_templates"),
    ("tests/integration/agent/conftest.py", "from amphora_agent import app",
     "tests.integration.agent.conftest -> amphora_agent.app"),
])
def test_a_forbidden_import_breaks_the_check(tmp_path: Path, module: str, line: str,
                                             expected: str) -> None:
    tree = tmp_path / "tree"
    for package in PACKAGES:
        shutil.copytree(REPO / package, tree / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(REPO / ".importlinter", tree / ".importlinter")
    target = tree / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    done = _lint(tree)
    assert done.returncode != 0, done.stdout[-3000:]
    assert expected in done.stdout, done.stdout[-3000:]
