from __future__ import annotations

import threading
import time

import pytest

from amphora_agent.errors import InvalidRequest
from amphora_agent.haproxy import cfgfile
from amphora_agent.haproxy.coalesce import Coalescer
from amphora_agent.haproxy.layout import LbLayout
from amphora_agent.haproxy.members import MemberChange, edit_config, template_options
from amphora_agent.haproxy.process import config_args

L1 = "11111111-1111-4111-8111-111111111111"
L2 = "22222222-2222-4222-8222-222222222222"
CONFIG = f"""\
global
    stats socket "/var/lib/octavia/lb 1.sock" mode 600 level admin  # comment
    server-state-file "/var/lib/octavia/lb/servers-state"
defaults
    mode tcp
frontend {L1}
    bind 192.0.2.1:443 ssl crt /certs/a.pem
    mode http
frontend {L2}
    bind 192.0.2.1:22
frontend prometheus-exporter-internal-endpoint
    bind 127.0.0.1:9101
    mode http
backend p:{L1}
    mode http
    server m1 198.51.100.1:80 weight 5 check inter 5s fall 3 rise 2 cookie abc id 3
    server m2 198.51.100.2:80 weight 1 check inter 5s fall 3 rise 2 backup

"""


def test_frontends_and_types() -> None:
    found = {f.name: f for f in cfgfile.frontends(CONFIG)}
    assert found[L1].listener_type == "TERMINATED_HTTPS"
    assert found[L2].listener_type == "TCP"  # mode from defaults
    assert not found["prometheus-exporter-internal-endpoint"].is_listener
    assert found[L1].is_listener


def test_quoted_paths() -> None:
    assert cfgfile.stats_socket(CONFIG) == ("/var/lib/octavia/lb 1.sock", True)
    assert cfgfile.server_state_file(CONFIG) == "/var/lib/octavia/lb/servers-state"
    assert cfgfile.stats_socket(CONFIG.replace("level admin", "level user")) == (
        "/var/lib/octavia/lb 1.sock", False)


def test_server_edits_touch_one_line() -> None:
    backend = f"p:{L1}"
    out = edit_config(CONFIG, backend, "m1", MemberChange(address="2001:db8::5", port=8080,
                                                          weight=7))
    changed = [line for line in out.splitlines() if line not in CONFIG.splitlines()]
    assert changed == ["    server m1 [2001:db8::5]:8080 weight 7 check inter 5s fall 3 rise 2 "
                       "cookie abc id 3"]
    drained = edit_config(out, backend, "m1", MemberChange(state="drain"))
    line = next(x for x in drained.splitlines() if " m1 " in x)
    assert "weight 0" in line and line.endswith("# amphora: drained from weight 7")
    ready = edit_config(drained, backend, "m1", MemberChange(state="ready"))
    assert ready == out
    maint = edit_config(out, backend, "m2", MemberChange(state="maint"))
    assert "backup disabled" in next(x for x in maint.splitlines() if " m2 " in x)
    removed = edit_config(out, backend, "m2", None)
    assert " m2 " not in removed and removed.count("server ") == 1


def test_added_server_inherits_check_options_not_identity() -> None:
    backend = f"p:{L1}"
    lines = CONFIG.splitlines()
    assert template_options(lines, backend) == ["check", "inter", "5s", "fall", "3", "rise",
                                                "2"]
    out = edit_config(CONFIG, backend, "m3", MemberChange(address="198.51.100.3", port=80),
                      add_options=template_options(lines, backend))
    new = [x for x in out.splitlines() if " m3 " in x]
    assert new == ["    server m3 198.51.100.3:80 weight 1 check inter 5s fall 3 rise 2"]
    # it lands inside the backend, before the trailing blank line
    assert out.splitlines().index(new[0]) == len(CONFIG.splitlines()) - 1


# Known answers of Octavia's own code: octavia.common.utils.base64_sha1_string(id) with
# "=" stripped, as Octavia's agent passes it to ``haproxy -L`` (both pairs are in
# Octavia's test of base64_sha1_string; recomputed with the octavia package that
# `make .venv-octavia` installs). See also tests/unit/haproxy_templates/test_hpt_render.py.
@pytest.mark.parametrize(("amphora_id", "peer"), [
    ("77e7d60d-e137-4246-8a84-a25db33571cd", "iVZVQ5AKmk2Ae0uGLP0Ue4OseRM"),
    ("4db4a3cf-9fef-4057-b1fd-b2afbf7a8a0f", "xxqntK8jJ_gE3QEmh-D1-XgCW_E"),  # '-' -> 'x'
])
def test_haproxy_runs_with_octavias_peer_name(amphora_id: str, peer: str, tmp_path) -> None:
    args = config_args(LbLayout(tmp_path, L1), tmp_path / "haproxy.cfg", amphora_id)
    assert args[args.index("-L") + 1] == peer


@pytest.mark.parametrize("body", [
    {"weight": -1}, {"weight": True}, {"address": "300.1.1.1", "port": 1},
    {"address": "192.0.2.1"}, {"port": 80}, {"state": "READY"}, {"extra": 1}, [],
])
def test_member_change_validation(body: object) -> None:
    with pytest.raises(InvalidRequest):
        MemberChange.from_json(body)


def _wait_for(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def _callers_during_a_run(coalescer: Coalescer, action, callers: int) -> list[object]:
    """``callers`` threads call ``coalescer.run(action)``: the first one's run is
    held until all the others are inside ``run`` (counted by the coalescer's
    own ticket counter), then released. Returns each caller's result or error."""
    started, release = threading.Event(), threading.Event()
    first_run = [True]

    def gated() -> object:
        if first_run[0]:
            first_run[0] = False
            started.set()
            assert release.wait(10)
        return action()

    outcomes: list[object] = []

    def call() -> None:
        try:
            outcomes.append(coalescer.run(gated))
        except Exception as exc:  # recorded, and asserted by the caller of this helper
            outcomes.append(exc)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    threads[0].start()
    assert started.wait(10)
    for thread in threads[1:]:
        thread.start()
    _wait_for(lambda: coalescer._arrived == callers, "every caller to arrive")
    release.set()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()
    return outcomes


def test_coalescer_runs_once_for_simultaneous_callers() -> None:
    coalescer: Coalescer[int] = Coalescer()
    runs: list[int] = []

    def action() -> int:
        runs.append(1)
        return len(runs)

    results = _callers_during_a_run(coalescer, action, 6)
    # one run for the first caller; one more for all five who arrived while it ran,
    # and each of them gets that second run's result
    assert coalescer.runs == 2 and len(runs) == 2
    assert sorted(results) == [1, 2, 2, 2, 2, 2]  # type: ignore[type-var]


def test_coalescer_hands_errors_to_covered_callers() -> None:
    coalescer: Coalescer[None] = Coalescer()
    runs: list[int] = []

    def fail() -> None:
        runs.append(1)
        raise RuntimeError(f"reload {len(runs)} failed")

    outcomes = _callers_during_a_run(coalescer, fail, 4)
    assert coalescer.runs == 2
    messages = sorted(str(o) for o in outcomes if isinstance(o, RuntimeError))
    # the first caller gets its own run's error; the three it covered share the second's
    assert messages == ["reload 1 failed"] + ["reload 2 failed"] * 3
