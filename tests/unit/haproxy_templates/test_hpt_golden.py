"""Golden configs for representative LBs, each also validated by the real ``haproxy -c``.

Regenerate the goldens after an intended change with::

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/haproxy_templates/test_hpt_golden.py

and review the diff like code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hpt_cases import AMP_A, AMP_B, CASES, GOLDEN_TARGET, case
from hpt_render import assert_valid, base_dir_of, render_checked

from haproxy_templates import (
    DEFAULT_BASE_PATH,
    DEFAULT_CERT_DIR,
    LoadBalancer,
    peer_name,
    render,
)

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_and_haproxy_accepts(name: str, tmp_path: Path, pki, haproxy_bin) -> None:
    doc = case(name)
    golden_text = render(doc, amphora_id=AMP_A, target=GOLDEN_TARGET)
    golden = GOLDEN_DIR / f"{name}.cfg"
    if UPDATE:
        golden.write_text(golden_text)
    assert golden.exists(), f"missing golden {golden}; run with UPDATE_GOLDEN=1"
    assert golden_text == golden.read_text()

    text, checked = render_checked(doc, tmp_path, pki)
    assert_valid(checked, text)
    # The checked config is the golden one with only the directories moved.
    moved = text.replace(str(tmp_path / "certs"), DEFAULT_CERT_DIR).replace(
        base_dir_of(text), DEFAULT_BASE_PATH)
    assert moved == golden_text


def test_output_is_deterministic() -> None:
    for name in CASES:
        a = render(case(name), amphora_id=AMP_A, target=GOLDEN_TARGET)
        b = render(LoadBalancer.from_dict(case(name)), amphora_id=AMP_A, target=GOLDEN_TARGET)
        assert a == b


def test_active_standby_both_amphorae_pass_with_their_peer_name(tmp_path: Path, pki,
                                                               haproxy_bin) -> None:
    for amp in (AMP_A, AMP_B):
        text, checked = render_checked(case("active_standby"), tmp_path / amp, pki,
                                       amphora_id=amp)
        assert_valid(checked, text)
        assert f"peer {peer_name(amp)!s}" in text.replace('"', "")
