"""Every validating pattern matches the whole value: a trailing newline is not valid.

Python's ``$`` also matches before a final ``\\n``, so ``re.match(r"^x$", "x\\n")``
succeeds; each validator below once accepted such a value.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from amphora_agent.errors import InvalidRequest
from amphora_agent.haproxy import members
from amphora_agent.network import interfaces, schema
from amphora_agent.services import ServiceSpec
from amphora_agent.validation import require_pem_filename, require_uuid
from haproxy_templates import cert_filename

UUID = "6f1a7c55-3a47-4f3e-9b65-0c3e4f0a9d11"


def _service(name: str) -> ServiceSpec:
    return ServiceSpec(name=name, description="d", foreground=("x",), daemon=("x",),
                       pid_file="/p", reload_signal=signal.SIGHUP)


REJECTS: dict[str, tuple[Callable[[str], object], str, type[Exception]]] = {
    "uuid": (require_uuid, UUID + "\n", InvalidRequest),
    "pem filename": (require_pem_filename, "a.pem\n", InvalidRequest),
    "service name": (_service, "haproxy-x\n", ValueError),
    "interface name": (lambda v: interfaces.index_of(v), "eth1\n", ValueError),
    "mac": (lambda v: schema.mac(v, "body.mac_address"), "fa:16:3e:00:00:01\n",
            InvalidRequest),
    "backend": (members.check_names, "pool:listener\n", InvalidRequest),
    "server": (lambda v: members.check_names("b", v), "member\n", InvalidRequest),
    "cert reference": (cert_filename, "a.pem\n", ValueError),
}


@pytest.mark.parametrize("name", sorted(REJECTS))
def test_trailing_newline_is_rejected(name: str) -> None:
    validate, value, error = REJECTS[name]
    validate(value.removesuffix("\n"))  # the value itself is fine
    with pytest.raises(error):
        validate(value)


def test_interface_names_are_checked_whole() -> None:
    assert interfaces.valid_name("eth1")
    assert not interfaces.valid_name("eth1\n")
