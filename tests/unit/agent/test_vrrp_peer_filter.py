"""The facts the agent reads from an uploaded keepalived config, and the
nftables rule it makes of them (amphora_agent/vrrp/instances.py, firewall.py)."""

from __future__ import annotations

from amphora_agent.vrrp import firewall, instances

OCTAVIA = """vrrp_script check_script {
  script /var/lib/octavia/vrrp/check_script.sh
  interval 5
}

vrrp_instance 0123abcd {
  state MASTER
  interface eth1
  unicast_src_ip 203.0.113.11
  unicast_peer {
    203.0.113.12
  }
  virtual_ipaddress {
    203.0.113.10
  }
  virtual_ipaddress_excluded { 2001:db8::10/128 dev eth2 }
}
"""

TWO_FAMILIES = """vrrp_instance v4 { interface eth1
 unicast_peer { 203.0.113.12 }
 virtual_ipaddress { 203.0.113.10/32 dev eth1 } }
vrrp_instance v6 {
 interface eth1
 unicast_peer {
  2001:db8:203::12
 }
 virtual_ipaddress {
  2001:db8:203::10/128 dev eth1
 }
}
"""


def test_octavia_shaped_config() -> None:
    [inst] = instances.parse(OCTAVIA)
    assert inst.interface == "eth1"
    assert [str(p) for p in inst.peers] == ["203.0.113.12"]
    assert [(str(v.address), v.interface) for v in inst.vips] == [
        ("203.0.113.10", "eth1"), ("2001:db8::10", "eth2")]


def test_only_the_peer_may_send_vrrp() -> None:
    script = firewall.render(instances.parse(OCTAVIA))
    assert ('iifname "eth1" meta nfproto ipv4 meta l4proto vrrp ip saddr != '
            '{ 203.0.113.12 } counter drop') in script
    # replaced in one transaction: create-if-missing, delete, recreate
    assert script.startswith("table inet amphora_vrrp {}\ndelete table inet amphora_vrrp\n")


def test_two_families_on_one_interface_keep_their_own_peer() -> None:
    script = firewall.render(instances.parse(TWO_FAMILIES))
    assert "meta nfproto ipv4 meta l4proto vrrp ip saddr != { 203.0.113.12 } counter drop" \
        in script
    assert ("meta nfproto ipv6 meta l4proto vrrp ip6 saddr != { 2001:db8:203::12 } "
            "counter drop") in script


def test_values_that_do_not_parse_never_reach_the_rule() -> None:
    text = OCTAVIA.replace("interface eth1", 'interface "eth1\\" accept; #"').replace(
        "203.0.113.12", "203.0.113.12;drop")
    facts = instances.parse(text)
    assert facts == []  # no usable interface: the instance is ignored
    assert "saddr" not in firewall.render(facts)


def test_multicast_instance_gets_no_rule() -> None:
    text = "vrrp_instance m {\n interface eth1\n virtual_ipaddress {\n 192.0.2.9\n }\n}\n"
    [inst] = instances.parse(text)
    assert inst.peers == ()
    assert "drop" not in firewall.render([inst])
