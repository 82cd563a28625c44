"""The wheel the image installs: the agent and the wire contract, complete, and
nothing of the controller.

The image installs the agent from the ``amphora-agent`` wheel
(packaging/amphora-agent), not from the work tree, so a package directory
setuptools does not pick up (e.g. one without ``__init__.py``) works in tests
on the tree but breaks the booted amphora; and a controller module in the
image is code an amphora never runs but would carry.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile

import pytest

from .conftest import REPO

AGENT_PACKAGES = ("amphora_agent", "amphora_contract")
NOT_IN_THE_IMAGE = ("controller_stub", "haproxy_templates", "keepalived", "bench", "tests")


def _version() -> str:
    """The project's version (the top-level setup.cfg); the agent's wheel carries the same."""
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    return parser["metadata"]["version"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    # as image-create.sh does: setuptools would reuse build/lib, stale modules included
    shutil.rmtree(REPO / "packaging" / "amphora-agent" / "build", ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "-w", str(out), str(REPO / "packaging" / "amphora-agent")],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    wheels = list(out.glob("*.whl"))
    assert [w.name for w in wheels] == [f"amphora_agent-{_version()}-py3-none-any.whl"]
    return zipfile.ZipFile(wheels[0])


@pytest.fixture(scope="module")
def wheel_names(wheel: zipfile.ZipFile) -> set[str]:
    return set(wheel.namelist())


def test_wheel_contains_every_agent_module(wheel_names: set[str]) -> None:
    missing = []
    for top in AGENT_PACKAGES:
        modules = sorted((REPO / top).rglob("*.py"))
        assert modules, f"{top} has no modules: is AGENT_PACKAGES out of date?"
        for module in modules:
            relative = module.relative_to(REPO).as_posix()
            if "__pycache__" not in relative and relative not in wheel_names:
                missing.append(relative)
    assert not missing, ("not in the wheel (a package directory without __init__.py?): "
                         + ", ".join(missing))
    assert "amphora_agent/openapi.yaml" in wheel_names
    # Octavia's keepalived template runs this script; the agent installs it.
    assert "amphora_agent/vrrp/scripts/check_script.sh" in wheel_names


def test_wheel_carries_no_controller(wheel_names: set[str]) -> None:
    tops = {name.split("/", 1)[0] for name in wheel_names}
    assert tops == {"amphora_agent", "amphora_contract", f"amphora_agent-{_version()}.dist-info"}
    assert not [n for n in wheel_names if n.split("/", 1)[0] in NOT_IN_THE_IMAGE]


def test_wheel_entry_points_are_the_agents(wheel: zipfile.ZipFile) -> None:
    parser = configparser.ConfigParser()
    parser.read_string(wheel.read(f"amphora_agent-{_version()}.dist-info/entry_points.txt")
                       .decode())
    assert dict(parser["console_scripts"]) == {
        "amphora-agent": "amphora_agent.cli:main",
        "amphora-interface": "amphora_agent.interface_cli:main"}
