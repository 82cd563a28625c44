"""The typed VRRP model for one amphora of an ACTIVE_STANDBY pair.

Every field is validated when the object is built, with whole-string matches
or parsed types, so an object that exists renders to a config keepalived
reads the way we mean: no value can carry a space, a quote, a ``#``/``!``
comment or a newline into the file (keepalived's own parser splits words on
whitespace and has no escape for them). Errors name the field.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from amphora_contract import vrrp as paths
from keepalived.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# keepalived names (instances, scripts, BFD sessions, router id).
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Linux interface names: at most 15 bytes, no '/', whitespace or ':'.
IFNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
# Absolute paths made of plain components only (no '..', no quoting needed).
PATH_RE = re.compile(r"(?:/[A-Za-z0-9_.+-]+)+")
USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# Default advertisement interval (seconds). VRRPv3 counts in centiseconds;
# the backup declares the master dead after 3 x advert_int + skew
# ((256 - priority) / 256 x advert_int): 0.07 s gives 0.25 s, so a master
# whose links go down is replaced in under 0.3 s (bench/failover.py measured
# 0.32 s with 0.10); 14 adverts per second per LB are nothing on this
# network, and 60 s of full load on 2 cores caused no spurious transition.
# docs/keepalived.md ("Failover") has the figures.
DEFAULT_ADVERT_INT = Decimal("0.07")
DEFAULT_BASE_PATH = "/var/lib/octavia"
# Policy-routing table the agent uses for VIP replies (docs/networking.md).
VIP_TABLE = 1
VIP_RULE_PRIORITY = 100


class Role(StrEnum):
    MASTER = "MASTER"
    BACKUP = "BACKUP"


def _name(value: str, what: str, pattern: re.Pattern[str] = NAME_RE) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValidationError(what, f"{value!r} must match {pattern.pattern}")
    return value


def _path(value: str, what: str) -> str:
    if (not isinstance(value, str) or not PATH_RE.fullmatch(value)
            or any(part in (".", "..") for part in value.split("/"))):
        raise ValidationError(what, f"{value!r} must be an absolute path of plain components")
    return value


def _int(value: int, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValidationError(what, f"must be an integer in {lo}..{hi}")
    return value


def _ip(value: object, what: str) -> IPAddress:
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        raise ValidationError(what, f"{value!r} is not an IP address") from None


def _seconds(value: object, what: str, lo: str, hi: str) -> Decimal:
    """Seconds with at most centisecond precision (keepalived's VRRPv3 unit)."""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValidationError(what, f"{value!r} is not a number of seconds") from None
    if not number.is_finite() or not Decimal(lo) <= number <= Decimal(hi):
        raise ValidationError(what, f"must be {lo}..{hi} seconds")
    if number != number.quantize(Decimal("0.01")):
        raise ValidationError(what, "has more than centisecond precision")
    return number.quantize(Decimal("0.01"))


@dataclass(frozen=True)
class HaproxyTrack:
    """Track this amphora's HAProxy with ``vrrp_track_process``.

    The kernel's process connector tells keepalived the moment the process
    exits: no polling, so the master gives up the VIP within milliseconds.
    The agent runs each HAProxy through a per-LB link whose name is derived
    from ``base_path`` and ``lb_id`` (amphora_contract/vrrp.py), so the
    process name matches only this amphora's HAProxy even when several
    amphorae share a host's process table (embedded mode), and it survives
    HAProxy's master re-exec on reload.
    """

    lb_id: str
    base_path: str = DEFAULT_BASE_PATH
    # Wait this long after the last match vanished before declaring it
    # down (0: at once).
    terminate_delay: Decimal = Decimal("0")

    def __post_init__(self) -> None:
        _name(self.lb_id, "track_haproxy.lb_id", UUID_RE)
        _path(self.base_path, "track_haproxy.base_path")
        object.__setattr__(self, "terminate_delay", _seconds(
            self.terminate_delay, "track_haproxy.terminate_delay", "0", "10"))

    @property
    def process_name(self) -> str:
        return paths.haproxy_process_name(self.base_path, self.lb_id)


@dataclass(frozen=True)
class Bfd:
    """A BFD session to the peer; the instance goes to FAULT when it is down."""

    min_rx_ms: int = 20
    min_tx_ms: int = 20
    idle_tx_ms: int = 1000
    multiplier: int = 3

    def __post_init__(self) -> None:
        _int(self.min_rx_ms, "bfd.min_rx_ms", 1, 1000)
        _int(self.min_tx_ms, "bfd.min_tx_ms", 1, 1000)
        _int(self.idle_tx_ms, "bfd.idle_tx_ms", 1000, 10000)
        _int(self.multiplier, "bfd.multiplier", 1, 10)


@dataclass(frozen=True)
class CheckScript:
    """An extra ``vrrp_script``; its path must be in the agent's check-script
    directory (``{base_path}/vrrp/``) or the agent refuses the upload. It runs
    as ``script_user``, which needs to be able to reach it."""

    name: str
    path: str
    interval: int = 1
    fall: int = 2
    rise: int = 2
    timeout: int = 1

    def __post_init__(self) -> None:
        _name(self.name, "check_script.name")
        _path(self.path, "check_script.path")
        _int(self.interval, "check_script.interval", 1, 3600)
        _int(self.fall, "check_script.fall", 1, 100)
        _int(self.rise, "check_script.rise", 1, 100)
        _int(self.timeout, "check_script.timeout", 1, 3600)


@dataclass(frozen=True)
class Garp:
    """Gratuitous ARP / unsolicited NA after becoming master and as a refresh."""

    master_delay: int = 1  # s before the second burst after the transition
    master_repeat: int = 3  # messages per burst
    master_refresh: int = 5  # s between refreshes while master (0: off)
    master_refresh_repeat: int = 2

    def __post_init__(self) -> None:
        _int(self.master_delay, "garp.master_delay", 0, 60)
        _int(self.master_repeat, "garp.master_repeat", 1, 100)
        _int(self.master_refresh, "garp.master_refresh", 0, 3600)
        _int(self.master_refresh_repeat, "garp.master_refresh_repeat", 1, 100)


@dataclass(frozen=True)
class VrrpInstance:
    """One amphora's side of an LB's VRRP pair (what it renders for itself).

    ``role`` decides the priority when ``priority`` is not given (MASTER 200,
    BACKUP 100). With ``preempt=False`` (default) both sides start as BACKUP
    with ``nopreempt``: the higher priority wins the first election, and an
    old master that returns stays backup, so its return causes no second
    outage.
    """

    lb_id: str
    amphora_id: str
    role: Role
    interface: str
    virtual_router_id: int
    unicast_src_ip: IPAddress
    unicast_peers: tuple[IPAddress, ...]
    vip: IPAddress
    vip_network: IPNetwork
    vip_gateway: IPAddress | None = None
    priority: int | None = None
    advert_int: Decimal = DEFAULT_ADVERT_INT
    preempt: bool = False
    preempt_delay: Decimal = Decimal("0")
    garp: Garp = field(default_factory=Garp)
    track_haproxy: HaproxyTrack | None = None
    bfd: Bfd | None = None
    check_scripts: tuple[CheckScript, ...] = ()
    script_user: str = "nobody"
    script_group: str | None = "nogroup"

    def __post_init__(self) -> None:
        _name(self.lb_id, "lb_id", UUID_RE)
        _name(self.amphora_id, "amphora_id", UUID_RE)
        try:
            object.__setattr__(self, "role", Role(self.role))
        except ValueError:
            raise ValidationError("role", f"must be one of {[r.value for r in Role]}") from None
        _name(self.interface, "interface", IFNAME_RE)
        _int(self.virtual_router_id, "virtual_router_id", 1, 255)
        src = _ip(self.unicast_src_ip, "unicast_src_ip")
        peers = tuple(_ip(p, f"unicast_peers[{i}]") for i, p in enumerate(self.unicast_peers))
        if not peers:
            raise ValidationError("unicast_peers", "needs the peer's VRRP address")
        if src in peers:
            raise ValidationError("unicast_peers", "must not contain unicast_src_ip")
        vip = _ip(self.vip, "vip")
        try:
            network = ipaddress.ip_network(str(self.vip_network), strict=False)
        except ValueError:
            raise ValidationError("vip_network", f"{self.vip_network!r} is not a network") from None
        if vip not in network:
            raise ValidationError("vip_network", f"does not contain the VIP {vip}")
        # One VRRP instance carries one address family (keepalived refuses mixes).
        for what, addr in (("unicast_src_ip", src),
                           *((f"unicast_peers[{i}]", p) for i, p in enumerate(peers))):
            if addr.version != vip.version:
                raise ValidationError(what, f"must be IPv{vip.version} like the VIP")
        gateway = None
        if self.vip_gateway is not None:
            gateway = _ip(self.vip_gateway, "vip_gateway")
            if gateway not in network:
                raise ValidationError("vip_gateway", "must be in vip_network")
        for name, value in (("unicast_src_ip", src), ("unicast_peers", peers), ("vip", vip),
                            ("vip_network", network), ("vip_gateway", gateway)):
            object.__setattr__(self, name, value)
        if self.priority is not None:
            _int(self.priority, "priority", 1, 254)
        object.__setattr__(self, "advert_int",
                           _seconds(self.advert_int, "advert_int", "0.01", "40.95"))
        object.__setattr__(self, "preempt_delay",
                           _seconds(self.preempt_delay, "preempt_delay", "0", "1000"))
        if not isinstance(self.preempt, bool):
            raise ValidationError("preempt", "must be true or false")
        for what, value, kind in (("garp", self.garp, Garp),
                                  ("track_haproxy", self.track_haproxy, HaproxyTrack),
                                  ("bfd", self.bfd, Bfd)):
            if value is not None and not isinstance(value, kind):
                raise ValidationError(what, f"must be a {kind.__name__}")
        names = [s.name for s in self.check_scripts]
        if len(set(names)) != len(names):
            raise ValidationError("check_scripts", "names must be unique")
        if self.bfd is not None and len(peers) != 1:
            raise ValidationError("bfd", "needs exactly one peer")
        _name(self.script_user, "script_user", USER_RE)
        if self.script_user == "root":
            raise ValidationError("script_user", "must not be root")
        if self.script_group is not None:
            _name(self.script_group, "script_group", USER_RE)

    @property
    def effective_priority(self) -> int:
        if self.priority is not None:
            return self.priority
        return 200 if self.role is Role.MASTER else 100

    @property
    def instance_name(self) -> str:
        """Octavia's VRRP group name rule: the LB id without dashes."""
        return self.lb_id.replace("-", "")

    @property
    def router_id(self) -> str:
        return f"amp_{self.amphora_id.replace('-', '')[:12]}"
