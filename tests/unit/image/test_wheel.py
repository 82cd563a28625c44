"""The wheel the image installs holds every Python package of the tree.

The image installs the agent from a wheel, not from the work tree, so a
package directory setuptools does not pick up (e.g. one without
``__init__.py``) works in tests on the tree but breaks the booted amphora.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from .conftest import REPO

TOP_PACKAGES = ("amphora_agent", "controller_stub", "haproxy_templates", "keepalived")


def test_wheel_contains_every_package(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    wheel = next(tmp_path.glob("amphora-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = []
    for top in TOP_PACKAGES:
        modules = sorted((REPO / top).rglob("*.py"))
        assert modules, f"{top} has no modules: is TOP_PACKAGES out of date?"
        for module in modules:
            relative = module.relative_to(REPO).as_posix()
            if "__pycache__" not in relative and relative not in names:
                missing.append(relative)
    assert not missing, ("not in the wheel (a package directory without __init__.py?): "
                         + ", ".join(missing))
