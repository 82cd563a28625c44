"""The renderer's output passes the real ``keepalived -t`` in every shape, and
the model refuses values that could change the config's structure."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from amphora_contract.vrrp import haproxy_process_name
from keepalived import (
    Bfd,
    CheckScript,
    HaproxyTrack,
    ValidationError,
    VrrpInstance,
    render,
)
from tests.support import namespaces

LB = "11111111-2222-4333-8444-555555555555"
AMP = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    """keepalived -t checks that the interfaces exist: give it an eth1."""
    with namespaces.namespace() as name:
        subprocess.run(["ip", "-n", name, "link", "add", "eth1", "type", "veth",
                        "peer", "name", "eth1p"], check=True)
        yield name


def config_test(netns: str, path: Path) -> subprocess.CompletedProcess[str]:
    # keepalived 2.2.7 kills itself during -t when a script runs as
    # script_user unless it is PID 1 of its PID namespace (docs/keepalived.md).
    return subprocess.run(["unshare", "--pid", "--fork", "ip", "netns", "exec", netns,
                           "keepalived", "-t", "-f", str(path)],
                          capture_output=True, text=True, check=False, timeout=30)


def instance(**changes: object) -> VrrpInstance:
    fields: dict[str, object] = dict(
        lb_id=LB, amphora_id=AMP, role="MASTER", interface="eth1", virtual_router_id=7,
        unicast_src_ip="192.0.2.11", unicast_peers=("192.0.2.12",), vip="192.0.2.100",
        vip_network="192.0.2.0/24", vip_gateway="192.0.2.1",
        track_haproxy=HaproxyTrack(lb_id=LB))
    fields.update(changes)
    return VrrpInstance(**fields)  # type: ignore[arg-type]


V6 = dict(unicast_src_ip="2001:db8::11", unicast_peers=("2001:db8::12",), vip="2001:db8::100",
          vip_network="2001:db8::/64", vip_gateway="2001:db8::1")

SHAPES = {
    "v4-master-nopreempt": {},
    "v4-backup": {"role": "BACKUP"},
    "v4-bfd": {"bfd": Bfd()},
    "v4-preempt-delay": {"preempt": True, "preempt_delay": Decimal("2.5")},
    "v4-no-gateway-no-track": {"vip_gateway": None, "track_haproxy": None},
    "v6": V6,
    "v6-bfd-preempt": {**V6, "bfd": Bfd(min_rx_ms=50, min_tx_ms=50), "preempt": True},
    "v4-script": {"check_scripts": (CheckScript("extra", "/tmp/amp-ka-check/check.sh"),)},
    "v4-advert-1s-delay": {"advert_int": "1", "track_haproxy":
                           HaproxyTrack(lb_id=LB, terminate_delay=Decimal("0.2"))},
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_rendered_config_passes_keepalived_t(netns: str, tmp_path: Path, shape: str) -> None:
    script_dir = Path("/tmp/amp-ka-check")
    script_dir.mkdir(mode=0o755, exist_ok=True)
    (script_dir / "check.sh").write_text("#!/bin/sh\nexit 0\n")
    (script_dir / "check.sh").chmod(0o755)
    path = tmp_path / "keepalived.conf"
    path.write_text(render(instance(**SHAPES[shape])))
    proc = config_test(netns, path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_config_test_catches_a_broken_config(netns: str, tmp_path: Path) -> None:
    """The check above can fail: keepalived -t rejects a bad advert_int."""
    path = tmp_path / "keepalived.conf"
    path.write_text(render(instance()).replace("advert_int 0.07", "advert_int 0.0x"))
    assert config_test(netns, path).returncode != 0


def test_defaults_render_the_documented_policy() -> None:
    text = render(instance())
    assert "vrrp_version 3" in text
    assert "    state BACKUP\n" in text and "    nopreempt\n" in text
    assert "    priority 200\n" in text and "    advert_int 0.07\n" in text
    assert "script_user nobody nogroup" in text and "enable_script_security" in text
    name = haproxy_process_name("/var/lib/octavia", LB)
    assert f"vrrp_track_process haproxy_{LB.replace('-', '')[:16]} {{\n    process {name}\n" in text
    assert "from 192.0.2.100/32 table 1 priority 100" in text
    assert "192.0.2.0/24 dev eth1 src 192.0.2.100 scope link table 1" in text
    assert "default via 192.0.2.1 dev eth1 onlink table 1" in text
    backup = render(instance(role="BACKUP"))
    assert "    priority 100\n" in backup and "    state BACKUP\n" in backup
    preempting = render(instance(preempt=True))
    assert "    state BACKUP\n" in preempting and "nopreempt" not in preempting


def test_track_is_per_amphora_base_path() -> None:
    one = render(instance(track_haproxy=HaproxyTrack(lb_id=LB, base_path="/srv/amp1")))
    two = render(instance(track_haproxy=HaproxyTrack(lb_id=LB, base_path="/srv/amp2")))
    name1, name2 = (haproxy_process_name(f"/srv/amp{i}", LB) for i in (1, 2))
    assert len(name1) == len(name2) == 15 and name1 != name2  # /proc/PID/comm holds 15
    assert f"process {name1}\n" in one and f"process {name2}\n" in two


@pytest.mark.parametrize(("changes", "field"), [
    ({"interface": "eth1\n}"}, "interface"),
    ({"interface": "eth 1"}, "interface"),
    ({"lb_id": "x" * 36}, "lb_id"),
    ({"virtual_router_id": 256}, "virtual_router_id"),
    ({"virtual_router_id": True}, "virtual_router_id"),
    ({"priority": 255}, "priority"),
    ({"advert_int": "0.005"}, "advert_int"),
    ({"advert_int": "41"}, "advert_int"),
    ({"advert_int": "nan"}, "advert_int"),
    ({"unicast_peers": ()}, "unicast_peers"),
    ({"unicast_peers": ("192.0.2.11",)}, "unicast_peers"),
    ({"unicast_peers": ("2001:db8::12",)}, "unicast_peers[0]"),
    ({"vip": "198.51.100.1"}, "vip_network"),
    ({"vip_gateway": "198.51.100.1"}, "vip_gateway"),
    ({"script_user": "root"}, "script_user"),
    ({"script_user": "nobody\n"}, "script_user"),
    ({"role": "STANDALONE"}, "role"),
    ({"bfd": Bfd(), "unicast_peers": ("192.0.2.12", "192.0.2.13")}, "bfd"),
])
def test_model_refuses(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        instance(**changes)
    assert err.value.field == field


@pytest.mark.parametrize("bad", ["/usr/sbin/haproxy\n", "relative/haproxy", "/a/../b",
                                 "/a b", '/a"b'])
def test_track_refuses_unsafe_paths(bad: str) -> None:
    with pytest.raises(ValidationError):
        HaproxyTrack(lb_id=LB, base_path=bad)
    with pytest.raises(ValidationError):
        CheckScript("c", bad)
