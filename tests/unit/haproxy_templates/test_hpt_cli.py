"""`amphora-ctl render` prints the config; errors are one line naming the field."""

from __future__ import annotations

import json
from pathlib import Path

from hpt_cases import AMP_A, AMP_B, case

from controller_stub.cli import main
from haproxy_templates import Target, peer_name, render


def test_render_command_prints_config(tmp_path: Path, capsys) -> None:
    doc_path = tmp_path / "lb.json"
    doc_path.write_text(json.dumps({"loadbalancer": case("active_standby")}))
    assert main(["render", str(doc_path), "--haproxy-version", "2.6.12-1+deb12u4",
                 "--amphora-id", AMP_B]) == 0
    out = capsys.readouterr().out
    assert out == render(case("active_standby"), amphora_id=AMP_B,
                         target=Target("2.6.12-1+deb12u4"))
    assert peer_name(AMP_B) in out


def test_render_command_defaults_to_local_target_and_first_amphora(tmp_path: Path,
                                                                   capsys) -> None:
    doc_path = tmp_path / "lb.json"
    doc_path.write_text(json.dumps(case("http")))
    out_path = tmp_path / "haproxy.cfg"
    assert main(["render", str(doc_path), "-o", str(out_path)]) == 0
    text = out_path.read_text()
    assert f"rendered for amphora {AMP_A}" in text
    assert f"nbthread {Target.detect().cpu_count}" in text


def test_render_command_reports_validation_error(tmp_path: Path, capsys) -> None:
    doc = case("http")
    doc["listeners"][0]["protocol_port"] = 0
    doc_path = tmp_path / "lb.json"
    doc_path.write_text(json.dumps(doc))
    assert main(["render", str(doc_path), "--haproxy-version", "2.6"]) == 1
    err = capsys.readouterr().err
    assert "listeners[0].protocol_port: must be 1..65535" in err
