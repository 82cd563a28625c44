"""``amphora-controller``'s config file: defaults, values read, bad input refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller_stub.controller import config
from controller_stub.controller.daemon import main


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "controller.conf"
    path.write_text(text, encoding="utf-8")
    return path


def test_values_and_defaults(tmp_path: Path) -> None:
    cfg = config.load(_write(tmp_path, "[controller]\nid = ctl-1\nlease_seconds = 5\n"
                                       "[database]\nurl = postgresql://amphora@db/amphora\n"
                                       "[budget]\nattempts = 2\nseconds = 4\n"))
    assert (cfg.controller_id, cfg.lease_seconds) == ("ctl-1", 5.0)
    assert cfg.database_url == "postgresql://amphora@db/amphora"
    assert (cfg.budget.attempts, cfg.budget.seconds, cfg.budget.agent_timeout) == (2, 4.0, 3.0)
    assert (cfg.compute_driver, cfg.image_source, cfg.workers) == ("local", "local", 2)
    assert (cfg.keep_failed_amphorae, cfg.compute_zones) == (False, "")
    assert cfg.certificate_directory == "/var/lib/amphora/certificates"
    assert cfg.connection_logging is True  # request logs on, as Octavia's default


def test_connection_logging_takes_octavias_section_and_name(tmp_path: Path) -> None:
    cfg = config.load(_write(tmp_path, "[haproxy_amphora]\nconnection_logging = False\n"))
    assert cfg.connection_logging is False


def test_zones_certificates_and_failed_amphorae(tmp_path: Path) -> None:
    cfg = config.load(_write(tmp_path, "[controller]\nkeep_failed_amphorae = true\n"
                                       "[compute]\nzones = rack-a, rack-b\n"
                                       "[certificates]\ndirectory = /srv/certs\n"))
    assert cfg.keep_failed_amphorae is True
    assert cfg.compute_zones == "rack-a, rack-b"
    assert cfg.certificate_directory == "/srv/certs"


@pytest.mark.parametrize(("text", "message"), [
    ("[controller]\nid = a b\n", "id"),
    ("[controller]\nid = ok\\n\n", "id"),
    ("[controller]\nworkers = 0\n", "workers"),
    ("[budget]\nattempts = 1000\n", "attempts"),
    ("[compute]\ndriver = nova\n", "driver"),
    ("[database]\nurl = mysql://x\n", "url"),
    ("[images]\nsource = ftp\n", "source"),
    ("[compute]\nzones = a, b c\n", "zones"),
    ("[typo]\nx = 1\n", "unknown section"),
    # a typo, and a key in the wrong section, are refused rather than ignored
    ("[controller]\nworker = 4\n", r"unknown key\(s\): \[controller\] worker$"),
    ("[api]\nflow_retention = 5\n", r"\[api\] flow_retention"),
    ("[health_manager]\nheartbeat_intervall = 1\n", "heartbeat_intervall"),
    ("[controller]\nlease_seconds = 2\n[budget]\nagent_timeout = 3\n", "lease_seconds"),
    ("[haproxy_amphora]\nconnection_logging = sometimes\n",
     r"\[haproxy_amphora\] connection_logging: true or false, not 'sometimes'"),
    ("[health_manager]\nfailover = maybe\n", r"\[health_manager\] failover"),
    ("[haproxy_amphora]\nhaproxy_cmd = /x\n", r"\[haproxy_amphora\] haproxy_cmd"),
    ("[api]\nbase_uri = ftp://lb.example.com\n", r"\[api\] base_uri"),
    ("[api]\nbase_uri = https://lb.example.com/v2?x=1\n", r"\[api\] base_uri"),
    ("[api]\nbase_uri = https://lb.example.com\"><script>\n", r"\[api\] base_uri"),
])
def test_bad_values_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config.load(_write(tmp_path, text))


def test_daemon_reports_a_bad_config_in_one_line(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config-file", str(_write(tmp_path, "[compute]\ndriver = nova\n"))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("amphora-controller: [compute] driver") and "\n" not in err
    assert main(["--config-file", str(tmp_path / "missing.conf")]) == 2


def test_openstack_notifications_and_statistics_sections(tmp_path: Path) -> None:
    cfg = config.load(_write(tmp_path, "[compute]\ndriver = openstack\n"
                                       "[openstack]\ncloud = prod\nmgmt_network = net-1\n"
                                       "[notifications]\ndrivers = log, webhook\n"
                                       "webhook_url = https://hooks.example/amphora\n"
                                       "[statistics]\nprometheus_port = 9200\n"))
    assert cfg.compute_driver == "openstack"
    assert cfg.openstack == {"cloud": "prod", "mgmt_network": "net-1"}
    assert cfg.notifications["drivers"] == "log, webhook"
    assert cfg.statistics == {"drivers": "state_store", "prometheus_port": "9200"}
    assert config.load(_write(tmp_path, "")).notifications == {}


def test_api_base_uri(tmp_path: Path) -> None:
    cfg = config.load(_write(tmp_path, "[api]\nbase_uri = https://lb.example.com:9876\n"))
    assert cfg.api.base_uri == "https://lb.example.com:9876"
    assert config.load(_write(tmp_path, "")).api.base_uri is None
