"""Plugging through the agent API on the real fabric: data path, policy routing, errors."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from amphora_contract import netns
from controller_stub.client import BadRequest, Conflict, NotFound
from controller_stub.compute import nsutil
from controller_stub.compute.local import Amphora, FabricAgentClient
from tests.integration.network.conftest import Plugged
from tests.support.fabric import (
    Listener,
    LocalFabric,
    fetch,
    network_body,
    probe,
    snapshot,
    vip_body,
)

pytestmark = pytest.mark.root


def _ip(namespace: str, *args: str) -> None:
    with netns.entered(namespace):
        subprocess.run(["ip", *args], check=True, capture_output=True)


def test_client_reaches_vip_and_amphora_reaches_member(plugged: Plugged) -> None:
    hap = plugged.amphora.haproxy_namespace
    # each family's client address arrives unchanged (no NAT on the way)
    for vip, client in ((plugged.vip.ipv4, plugged.user.ipv4),
                        (plugged.vip.ipv6, plugged.user.ipv6)):
        with Listener(hap, str(vip), 8080, b"from-vip") as listener:
            assert probe(plugged.user.namespace, str(vip), 8080) == b"from-vip"
        assert listener.peers == [str(client)]
    for member_ip, own in ((plugged.member.ipv4, plugged.member_port.ipv4),
                           (plugged.member.ipv6, plugged.member_port.ipv6)):
        answer = fetch(hap, str(member_ip))
        assert answer["member"] == "member-1"
        # The member sees the amphora's address on the member network, same family.
        assert answer["client"] == str(own)


def test_replies_from_vip_leave_by_vip_gateway(fabric: LocalFabric, plugged: Plugged) -> None:
    """The main default route points at the member network's router, which
    drops spoofed sources; only the ``from VIP`` rule and table 1 get replies
    back out by the VIP gateway."""
    hap = plugged.amphora.haproxy_namespace
    member_net = plugged.member_port.network
    _ip(hap, "route", "replace", "default", "via", str(member_net.gateway4), "dev", "eth2")
    _ip(hap, "-6", "route", "replace", "default", "via", str(member_net.gateway6), "dev", "eth2")
    for vip in (str(plugged.vip.ipv4), str(plugged.vip.ipv6)):
        with Listener(hap, vip, 8081, b"policy"):
            assert probe(plugged.user.namespace, vip, 8081) == b"policy"
    # Control: without the rule the reply takes the main default route and the
    # fabric's reverse-path filter drops it.
    family = ("-4", str(plugged.vip.ipv4))
    _ip(hap, family[0], "rule", "del", "from", family[1], "lookup", "1")
    with Listener(hap, family[1], 8082, b"x"):
        assert probe(plugged.user.namespace, family[1], 8082, timeout=1.0) is None
    # amphora-interface up restores the rule (idempotently) and the path works.
    result = fabric.run_interface_tool(plugged.amphora, "up", "eth1")
    assert result.returncode == 0, result.stderr
    with Listener(hap, family[1], 8083, b"back"):
        assert probe(plugged.user.namespace, family[1], 8083) == b"back"


def test_second_plug_of_vip_is_conflict_and_network_is_update(
        fabric: LocalFabric, plugged: Plugged) -> None:
    with pytest.raises(Conflict):
        plugged.client.plug_vip(str(plugged.vip.ipv4), vip_body(plugged.vip))
    # Re-plugging the member network with one more fixed IP updates eth2 in place.
    body = network_body(plugged.member_port)
    extra = plugged.member_port.network.allocate()[0]
    body["fixed_ips"].append({"ip_address": str(extra), "subnet_cidr":
                              str(plugged.member_port.network.ipv4), "gateway": None,
                              "host_routes": [{"destination": "198.51.100.128/25",
                                               "nexthop": "198.51.100.1"}]})
    reply = plugged.client.plug_network(body)
    assert reply == {"message": "OK", "details": "Updated existing interface eth2"}
    assert plugged.client.get_interface(str(extra)) == "eth2"
    routes = snapshot(plugged.amphora.haproxy_namespace)["routes"]
    assert ("-4", "main", "198.51.100.128/25", "198.51.100.1", "eth2", None,
            ("onlink",)) in routes
    # And back: the extra address and its route go away again.
    plugged.client.plug_network(network_body(plugged.member_port))
    with pytest.raises(NotFound):
        plugged.client.get_interface(str(extra))
    assert "198.51.100.128/25" not in {r[2] for r in
                                       snapshot(plugged.amphora.haproxy_namespace)["routes"]}


def test_plug_before_nic_exists_is_json_404(fabric: LocalFabric, amphora: Amphora,
                                            client: FabricAgentClient) -> None:
    body = {"subnet_cidr": "203.0.113.0/24", "gateway": "203.0.113.1",
            "mac_address": "fa:16:3e:00:00:99"}
    with pytest.raises(NotFound) as err:
        client.plug_vip("203.0.113.99", body)
    assert err.value.body == {"message": "Invalid VIP",
                              "details": "No suitable network interface found"}
    with pytest.raises(NotFound) as err:
        client.plug_network({"mac_address": "fa:16:3e:00:00:98", "fixed_ips": []})
    assert err.value.body["details"] == "No suitable network interface found"
    # The client's default retry loop waits for the NIC: attach it meanwhile.
    port = fabric.hotplug_port(amphora, "vip", mac="fa:16:3e:00:00:99")
    with fabric.client(amphora, retries=20) as patient:
        assert patient.plug_vip(str(port.ipv4), vip_body(port, ipv6=False))["details"] == \
            f"VIPs plugged on interface eth1: {port.ipv4}"


BAD_VIP_BODIES = [
    {"gateway": "203.0.113.1", "mac_address": "{mac}"},  # missing subnet_cidr
    {"subnet_cidr": "203.0.113.0/24", "gateway": "203.0.113.1", "mac_address": "{mac}",
     "surprise": 1},
    {"subnet_cidr": "203.0.113.0/33", "gateway": "203.0.113.1", "mac_address": "{mac}"},
    {"subnet_cidr": "203.0.113.0/24", "gateway": "203.0.113.1; reboot",
     "mac_address": "{mac}"},
    {"subnet_cidr": "203.0.113.0/24", "gateway": "203.0.113.1", "mac_address": "zz"},
    {"subnet_cidr": "198.51.100.0/24", "gateway": "198.51.100.1", "mac_address": "{mac}"},
    {"subnet_cidr": "203.0.113.0/24", "gateway": "203.0.113.1", "mac_address": "{mac}",
     "mtu": "1500"},
    {"subnet_cidr": "203.0.113.0/24", "gateway": "203.0.113.1", "mac_address": "{mac}",
     "host_routes": [{"destination": "10.0.0.0/8", "nexthop": "203.0.113.1"}] * 65},
    {"subnet_cidr": "203.0.113.0/24", "gateway": "2001:db8::1", "mac_address": "{mac}"},
    {"subnet_cidr": "203.0.113.0/24", "gateway": "203.0.113.1", "mac_address": "{mac}",
     "additional_vips": [{"ip_address": "2001:db8:203::5", "subnet_cidr": "2001:db8:203::/64",
                          "evil": True}]},
    {"subnet_cidr": "203.0.113.0/24", "gateway": "203.0.113.1", "mac_address": "{mac}",
     "is_sriov": "yes"},
]


def test_bad_bodies_are_400_and_change_nothing(fabric: LocalFabric, amphora: Amphora,
                                               client: FabricAgentClient) -> None:
    port = fabric.hotplug_port(amphora, "vip")
    own_before = nsutil.run_in(amphora.namespace, _links)
    files = amphora.root / "interfaces"
    for body in BAD_VIP_BODIES:
        text = json.loads(json.dumps(body).replace("{mac}", port.mac))
        with pytest.raises(BadRequest) as err:
            client.plug_vip(str(port.ipv4), text)
        assert err.value.body["message"] == "Invalid request", body
    for raw in (b"not json", b"[]", b"null"):
        with pytest.raises(BadRequest):
            client.request("POST", f"/1.0/plug/vip/{port.ipv4}", data=raw)
    with pytest.raises(BadRequest):
        client.plug_vip("not-an-ip", vip_body(port))
    for body in ({"fixed_ips": []}, {"mac_address": port.mac, "fixed_ips": [{}]},
                 {"mac_address": port.mac, "fixed_ips": "198.51.100.5"},
                 {"mac_address": port.mac, "vip_net_info": {"vip": "203.0.113.5"}}):
        with pytest.raises(BadRequest):
            client.plug_network(body)
    assert nsutil.run_in(amphora.namespace, _links) == own_before
    assert not netns.exists(amphora.haproxy_namespace)
    assert not files.exists() or not any(files.glob("*.json"))
    # The NIC is still there and a good body plugs it.
    assert client.plug_vip(str(port.ipv4), vip_body(port))["message"] == "OK"


def _links() -> list[tuple[str, str]]:
    out = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True)
    return sorted((link["ifname"], link.get("address", "")) for link in json.loads(out.stdout))


def test_get_interface(plugged: Plugged) -> None:
    client = plugged.client
    assert client.get_interface(str(plugged.vip.ipv4)) == "eth1"
    assert client.get_interface(str(plugged.vip.ipv6)) == "eth1"
    assert client.get_interface(str(plugged.member_port.ipv4)) == "eth2"
    reply = client.request("GET", f"/1.0/interface/{plugged.vip.ipv4}").json()
    assert reply == {"message": "OK", "interface": "eth1"}
    with pytest.raises(BadRequest):
        client.get_interface("203.0.113.300")
    with pytest.raises(NotFound) as err:
        client.get_interface("192.0.2.250")
    # Octavia's message for an address no interface has
    assert err.value.body["message"] == "Error interface not found for IP address"


def test_interface_rules_filter_the_vip(plugged: Plugged) -> None:
    hap, vip = plugged.amphora.haproxy_namespace, str(plugged.vip.ipv4)
    user = plugged.user
    rules = [{"protocol": "TCP", "cidr": f"{user.ipv4}/32", "port": 8090},
             {"protocol": "TCP", "cidr": None, "port": 8091},
             {"protocol": "UDP", "cidr": "2001:db8:192::/64", "port": 53},
             {"protocol": "vrrp", "cidr": "203.0.113.0/24", "port": 112}]
    assert plugged.client.set_interface_rules(vip, rules) == {"message": "OK"}
    with Listener(hap, vip, 8090, b"a"), Listener(hap, vip, 8091, b"b"), \
            Listener(hap, vip, 8092, b"c"), Listener(hap, str(plugged.vip.ipv6), 8090, b"d"):
        assert probe(user.namespace, vip, 8090) == b"a"
        assert probe(user.namespace, vip, 8091) == b"b"
        assert probe(user.namespace, vip, 8092, timeout=1.0) is None
        # The 8090 rule names an IPv4 source only.
        assert probe(user.namespace, str(plugged.vip.ipv6), 8090, timeout=1.0) is None
        # The amphora still reaches members (replies are established traffic).
        assert fetch(hap, str(plugged.member.ipv4))["member"] == "member-1"
    stored = json.loads((plugged.amphora.root / "interfaces" / "eth1.json").read_text())
    assert [r["port"] for r in stored["firewall"]] == [8090, 8091, 53, None]
    for bad in ([{"protocol": "ICMP", "cidr": None, "port": 1}],
                [{"protocol": "TCP", "cidr": "0.0.0.0/0; flush ruleset", "port": 80}],
                [{"protocol": "TCP", "cidr": None, "port": 70000}],
                [{"protocol": "TCP", "cidr": None, "port": 80, "table": "x"}],
                {"protocol": "TCP"}):
        with pytest.raises(BadRequest):
            plugged.client.set_interface_rules(vip, bad)  # type: ignore[arg-type]
    assert json.loads((plugged.amphora.root / "interfaces" / "eth1.json").read_text()) == stored
    # Opening everything again.
    plugged.client.set_interface_rules(vip, [{"protocol": "TCP", "cidr": None, "port": 8092}])
    with Listener(hap, vip, 8092, b"c"):
        assert probe(user.namespace, vip, 8092) == b"c"


def test_interface_files_are_private(plugged: Plugged) -> None:
    files = sorted((plugged.amphora.root / "interfaces").glob("eth*.json"))
    # the VIP (eth1) and the member network (eth2) are plugged
    assert [path.name for path in files] == ["eth1.json", "eth2.json"]
    for path in files:
        assert os.stat(path).st_mode & 0o777 == 0o600, path


def test_single_topology_announces_the_vip(fabric: LocalFabric, amphora: Amphora,
                                           client: FabricAgentClient) -> None:
    """Gratuitous ARP / unsolicited NA reach the router (accepting untracked ones)."""
    port = fabric.hotplug_port(amphora, "vip")
    for key in ("net.ipv4.conf.br-vip.arp_accept", "net.ipv6.conf.br-vip.accept_untracked_na"):
        nsutil.sysctl(fabric.namespace, key, "1")
    client.plug_vip(str(port.ipv4), vip_body(port))
    with netns.entered(fabric.namespace):
        out = subprocess.run(["ip", "-j", "neigh", "show", "dev", "br-vip"],
                             capture_output=True, text=True, check=True).stdout
    neighbours = {(n["dst"], n.get("lladdr")) for n in json.loads(out)}
    assert (str(port.ipv4), port.mac) in neighbours
    assert (str(port.ipv6), port.mac) in neighbours
