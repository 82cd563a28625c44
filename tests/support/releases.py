"""The agent of an earlier release, built from git into its own virtualenv.

``packaging/releases.toml`` records each release tag and its commit. The
agent is built from the tag when the clone has it (it must name the recorded
commit), else from the recorded commit (CI clones may lack tags); a commit
missing from the clone's history is an error naming what to fetch, never a
skip. The source is ``git archive`` of the agent wheel's directories at that
commit, installed (not editable) into ``build/releases/agent-<sha>``; a
finished virtualenv is reused, so only the first run pays for the build.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RELEASES = REPO / "packaging" / "releases.toml"
CACHE = REPO / "build" / "releases"
# the agent wheel's source: its packaging directory holds symlinks to these
SOURCES = ("packaging/amphora-agent", "amphora_agent", "amphora_contract")


class ReleaseMissing(RuntimeError):
    """The release's commit is not in this clone."""


@dataclass(frozen=True)
class ReleaseAgent:
    tag: str
    commit: str
    venv: Path

    @property
    def version(self) -> str:
        return self.tag.removeprefix("v")


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                          timeout=120, check=False)


def previous_release() -> tuple[str, str]:
    """(tag, commit) of the release the upgrade matrix tests against."""
    data = tomllib.loads(RELEASES.read_text(encoding="utf-8"))
    tag = data["previous"]
    return tag, data["releases"][tag]


def resolve(tag: str, recorded: str) -> str:
    """The commit to build: the tag's, which must be the recorded one, else the recorded."""
    tagged = _git("rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}")
    if tagged.returncode == 0:
        commit = tagged.stdout.strip()
        if commit != recorded:
            raise ReleaseMissing(f"tag {tag} names {commit}, packaging/releases.toml "
                                 f"records {recorded}: fix one of them")
        return commit
    if _git("cat-file", "-e", f"{recorded}^{{commit}}").returncode != 0:
        raise ReleaseMissing(
            f"release {tag} (commit {recorded}) is not in this clone's history: "
            f"fetch it (git fetch --tags; git fetch --unshallow in a shallow clone)")
    return recorded


def _installed(venv: Path, commit: str) -> bool:
    stamp = venv / "amphora-release-commit"
    return stamp.exists() and stamp.read_text(encoding="utf-8").strip() == commit


def build(tag: str, commit: str, cache: Path = CACHE) -> ReleaseAgent:
    """The release's agent in its virtualenv, built once per commit."""
    venv = cache / f"agent-{commit}"
    cache.mkdir(parents=True, exist_ok=True)
    lock = os.open(cache / f"agent-{commit}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; the others reuse it
        if not _installed(venv, commit):
            _build(commit, venv)
    finally:
        os.close(lock)
    return ReleaseAgent(tag, commit, venv)


def _build(commit: str, venv: Path) -> None:
    """Build into place; the stamp written last marks it complete (a build cut
    short has none and is redone)."""
    shutil.rmtree(venv, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="amphora-release-") as tmp:
        archive = Path(tmp) / "source.tar"
        done = _git("archive", "--format=tar", f"--output={archive}", commit, *SOURCES)
        if done.returncode != 0:
            raise ReleaseMissing(f"git archive {commit}: {done.stderr.strip()}")
        source = Path(tmp) / "source"
        with tarfile.open(archive) as tar:
            tar.extractall(source, filter="data")
        _run([sys.executable, "-m", "venv", str(venv)])
        _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
              str(source / "packaging" / "amphora-agent")])
    (venv / "amphora-release-commit").write_text(commit + "\n", encoding="utf-8")


def _run(argv: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} …: {done.stderr[-2000:]}")
