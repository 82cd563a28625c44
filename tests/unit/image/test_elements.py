"""The elements pass dib-lint and shellcheck, are documented, and their dependencies resolve."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import ELEMENTS, OUR_ELEMENTS, REPO

DEFAULT_ELEMENTS = ("debian-minimal", "vm", "block-device-mbr", *OUR_ELEMENTS)


def _bash_scripts() -> list[Path]:
    scripts = [REPO / "image-create.sh"]
    for path in sorted(ELEMENTS.rglob("*")):
        if path.is_file() and path.read_bytes().startswith(b"#!/bin/bash"):
            scripts.append(path)
    return scripts


def test_every_element_is_present_and_documented() -> None:
    for name in OUR_ELEMENTS:
        element = ELEMENTS / name
        assert (element / "README.rst").read_text().startswith("="), name
        assert (element / "element-deps").is_file(), name
        hooks = [p for p in element.iterdir() if p.is_dir() and p.name.endswith(".d")]
        assert hooks, f"{name} has no hook scripts"


def test_dib_lint_accepts_the_elements(dib_bin: Path) -> None:
    env = {**os.environ, "ELEMENTS_DIR": "elements", "LIB_DIR": "elements",
           "PATH": f"{dib_bin}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([str(dib_bin / "dib-lint")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "PASS" in done.stdout
    assert "ERROR" not in done.stdout


def test_shellcheck_is_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is not installed: run 'make apt'")
    scripts = _bash_scripts()
    assert len(scripts) >= 10
    done = subprocess.run([shellcheck, "-x", *map(str, scripts)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    env_files = sorted(ELEMENTS.glob("*/environment.d/*"))
    assert env_files, "no environment.d files: shellcheck would check nothing"
    done = subprocess.run([shellcheck, "-s", "bash", *map(str, env_files)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def _expand(dib_bin: Path, *elements: str) -> subprocess.CompletedProcess[str]:
    dib_elements = subprocess.run(
        [str(dib_bin / "python"), "-c",
         "import diskimage_builder.paths as p; print(p.get_path('elements'))"],
        capture_output=True, text=True, check=True).stdout.strip()
    env = {**os.environ, "ELEMENTS_PATH": f"{ELEMENTS}{os.pathsep}{dib_elements}"}
    return subprocess.run(
        [str(dib_bin / "python"), "-m", "diskimage_builder.element_dependencies", *elements],
        env=env, capture_output=True, text=True, timeout=120)


def test_element_dependencies_resolve(dib_bin: Path) -> None:
    done = _expand(dib_bin, *DEFAULT_ELEMENTS)
    assert done.returncode == 0, done.stderr[-3000:]
    expanded = set(done.stdout.split())
    for needed in (*OUR_ELEMENTS, "install-static", "package-installs", "dib-init-system",
                   "debootstrap", "bootloader"):
        assert needed in expanded, needed


def test_manifest_pulls_in_the_agent(dib_bin: Path) -> None:
    done = _expand(dib_bin, "debian-minimal", "amphora-manifest")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "amphora-agent" in done.stdout.split()


def test_unknown_element_is_reported(dib_bin: Path) -> None:
    done = _expand(dib_bin, "debian-minimal", "no-such-amphora-element")
    assert done.returncode != 0
    assert "no-such-amphora-element" in done.stderr


def test_hook_scripts_are_executable() -> None:
    hooks = [p for p in ELEMENTS.glob("*/*.d/*") if p.parent.name != "environment.d"]
    environment = list(ELEMENTS.glob("*/environment.d/*"))
    assert hooks and environment, "no hook or environment.d scripts found under elements/"
    for path in hooks:
        assert os.access(path, os.X_OK), path
    for path in environment:
        assert not os.access(path, os.X_OK), f"{path} must be sourced, not executed"


def test_units_start_the_agent_with_its_config() -> None:
    unit = (ELEMENTS / "amphora-agent/static/etc/systemd/system/amphora-agent.service").read_text()
    assert ("ExecStart=/opt/amphora-agent/bin/amphora-agent --config-file "
            "/etc/octavia/amphora-agent.conf") in unit
    assert "ConditionPathExists=/etc/octavia/amphora-agent.conf" in unit
    netns = (ELEMENTS / "amphora-agent/static/etc/systemd/system/amphora-netns.service").read_text()
    assert "amphora-interface up all" in netns
    install = (ELEMENTS / "amphora-agent/install.d/70-amphora-agent").read_text()
    assert "--no-index" in install
    assert "install -d -m 0700 -o root -g root /etc/octavia/certs" in install


def test_load_balancer_sysctls() -> None:
    text = (ELEMENTS / "haproxy-amphora/static/etc/sysctl.d/60-amphora-lb.conf").read_text()
    settings = dict(line.split(" = ", 1) for line in text.splitlines()
                    if line and not line.startswith("#"))
    assert int(settings["net.core.somaxconn"]) >= 65000
    assert int(settings["net.netfilter.nf_conntrack_max"]) >= 262144
    low, high = map(int, settings["net.ipv4.ip_local_port_range"].split())
    assert low <= 1025 and high >= 65000
    assert int(settings["fs.nr_open"]) >= 1048576
