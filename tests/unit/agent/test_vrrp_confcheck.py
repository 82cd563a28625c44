"""What an uploaded keepalived config may run: programs only from the agent's
check-script directory, no includes, FIFOs, foreign namespaces or '$'."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amphora_agent.errors import InvalidRequest
from amphora_agent.vrrp.confcheck import check, words

NS = "amphora-haproxy"


def test_words_follow_keepalived_quoting_and_comments() -> None:
    assert words('  script "/a b/c.sh arg"  # note') == ["script", "/a b/c.sh arg"]
    assert words("notify_master /x/y.sh ! comment") == ["notify_master", "/x/y.sh"]
    assert words("vrrp_script chk {") == ["vrrp_script", "chk", "{"]


@pytest.fixture
def vrrp_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "vrrp"
    directory.mkdir()
    (directory / "check_script.sh").write_text("#!/bin/sh\n")
    return directory


@pytest.mark.parametrize("line", [
    "script {d}/check_script.sh",
    'script "{d}/check_script.sh arg1 arg2"',
    "notify_master {d}/check_script.sh",
    "    misc_path \"{d}/check_script.sh 192.0.2.1 53\"",
    "net_namespace amphora-haproxy",
    "auth_pass abc#def",  # "#" inside a word is not a comment
])
def test_accepted(vrrp_dir: Path, line: str) -> None:
    check(line.format(d=vrrp_dir) + "\n", (vrrp_dir,), NS)


@pytest.mark.parametrize(("line", "expect"), [
    ("script /bin/sh", "outside"),
    ('script "/bin/sh -c id"', "outside"),
    ("script {d}/../escape.sh", "plain components"),
    ("script /bin/sh#/../..{d}/check_script.sh", "plain components"),
    ("script {d}/./check_script.sh", "plain components"),
    ("script {d}", "outside"),  # the directory itself is not a program
    ("notify_fault check_script.sh", "absolute"),
    ("script {d}/link.sh", "outside"),  # a symlink out of the directory
    ("include /etc/keepalived/other.conf", "include"),
    ("vrrp_notify_fifo /tmp/fifo", "vrrp_notify_fifo"),
    ("$EVIL=/bin/sh", "'$'"),
    ("script ${{EVIL}}", "'$'"),
    ("@host1 script /bin/sh", "'$'"),
    ("net_namespace other", "net_namespace"),
    ("startup_script /bin/true", "startup_script"),
    ("router_id a\x1bb", "control characters"),
])
def test_refused(vrrp_dir: Path, line: str, expect: str) -> None:
    os.symlink("/bin/sh", vrrp_dir / "link.sh")
    with pytest.raises(InvalidRequest) as err:
        check(line.format(d=vrrp_dir) + "\n", (vrrp_dir,), NS)
    assert expect in err.value.details
