"""image-create.sh: help and option errors are clear and happen before any work."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import REPO

SCRIPT = REPO / "image-create.sh"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=60)


def test_help_lists_the_options() -> None:
    done = run("-h")
    assert done.returncode == 0
    for option in ("--output-dir", "--name", "--format", "--release", "--arch", "--image-size",
                   "--with-sshd", "--cpu-pinning", "--element", "--cache-dir", "--upload",
                   "--tag"):
        assert option in done.stdout, option


@pytest.mark.parametrize(("args", "message"), [
    (("--format", "vmdk"), "--format must be qcow2, raw or tar"),
    (("--arch", "mips"), "--arch must be amd64 or arm64"),
    (("--release", "buster"), "--release must be bookworm or trixie"),
    (("--image-size", "big"), "--image-size must be a whole number"),
    (("--name", "../x"), "--name may only use"),
    (("--time-sync", "ntpd"), "--time-sync must be"),
    (("--haproxy-apt-source", "deb http://example.invalid x main"), "needs --haproxy-key"),
    (("--haproxy-source", "--haproxy-source-suite", "Sid;rm"), "must be a Debian suite name"),
    (("--output-dir",), "--output-dir needs a value"),
    (("--bogus",), "unknown option: --bogus"),
])
def test_bad_options_are_refused(args: tuple[str, ...], message: str) -> None:
    done = run(*args)
    assert done.returncode == 1
    assert message in done.stderr


def test_check_reports_prerequisites() -> None:
    done = run("--check")
    assert done.returncode == 0, done.stderr
    assert "prerequisites OK" in done.stderr
