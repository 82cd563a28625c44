"""The renderer validates every identifier it is given, not only the LB document.

``amphora_id`` is printed outside quotes (the header comment, the peer name
derivation) and the render options reach global settings: a trailing newline
or a second word must be a ValidationError, never a config line.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hpt_cases import AMP_A, GOLDEN_TARGET, case

from haproxy_templates import RenderOptions, ValidationError, render

BAD_AMPHORA_IDS = [
    AMP_A + "\n",
    AMP_A + "\nlisten evil\n    bind :1",
    "\n" + AMP_A,
    AMP_A + " x",
    "not-a-uuid",
    AMP_A.replace("-", ""),
    "{" + AMP_A + "}",
    "",
]


@pytest.mark.parametrize("amphora_id", BAD_AMPHORA_IDS)
def test_amphora_id_must_be_a_whole_uuid(amphora_id: str) -> None:
    text = render(case("http"), amphora_id=AMP_A.upper(), target=GOLDEN_TARGET)
    assert f"rendered for amphora {AMP_A.upper()}." in text  # any case of a UUID is fine
    with pytest.raises(ValidationError) as err:
        render(case("http"), amphora_id=amphora_id, target=GOLDEN_TARGET)
    assert err.value.field == "amphora_id"


BAD_OPTIONS = [
    ("base_path", "/var/lib/octavia\n"),
    ("base_path", "relative/path"),
    ("base_path", "/var/lib/../../etc"),
    ("cert_dir", "/var/lib/octavia/certs\nlua-load /tmp/x.lua"),
    ("ping_script", "/bin/sh -c id"),
    ("log_target", "/dev/log\n"),
    ("user", "root\n"),
    ("group", "nogroup extra"),
    ("user_log_facility", "local0\n"),
    ("admin_log_facility", "local9"),
    ("hard_stop_after", "10m\n"),
    ("stick_table_size", "10k\n"),
    ("persistence_cookie", "SRV\n"),
    ("http_reuse", "sometimes"),
    ("prometheus_bind", "127.0.0.1:9101\n"),
]


@pytest.mark.parametrize(("name", "value"), BAD_OPTIONS)
def test_render_options_are_validated_whole(name: str, value: str) -> None:
    options = replace(RenderOptions(), **{name: value})
    with pytest.raises(ValidationError) as err:
        render(case("http"), amphora_id=AMP_A, target=GOLDEN_TARGET, options=options)
    assert err.value.field == f"options.{name}"
