"""One LB rendered for each image's HAProxy, checked by that HAProxy's own ``haproxy -c``.

Bookworm's 2.6 is this host's binary; trixie's 3.0 and the next Debian
release's 3.2 run in cached debootstrap roots (``haproxy_roots``). Each
target is read from its binary (``haproxy -vv``, ``openssl version``), so
the capability table meets the real build options, QUIC included.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from haproxy_templates import CapabilityError, RenderOptions, Target, Version, render
from tests.integration.image.haproxy_roots import AMP, LB_ID, haproxy_root
from tests.integration.image.haproxy_roots import tls_lb as lb

pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]

# release -> debootstrap suite (None: this host, Debian 12)
RELEASES = {"bookworm": None, "trixie": "trixie", "next": "sid"}


class Release:
    """One release's HAProxy: its facts, and ``haproxy -c`` on a rendered config."""

    def __init__(self, suite: str | None) -> None:
        self.root = haproxy_root(suite) if suite else Path("/")
        self.prefix = ("chroot", str(self.root)) if suite else ()
        self.target = Target.detect("/usr/sbin/haproxy", "openssl", prefix=self.prefix)

    def check(self, doc: dict, options: RenderOptions) -> str:
        """Render ``doc`` into a layout inside the root and return the accepted config."""
        with tempfile.TemporaryDirectory(prefix="capcheck", dir=self.root / "tmp") as tmp:
            inside = Path("/tmp") / Path(tmp).name  # the same directory, seen from the root
            certs = Path(tmp) / "certs" / LB_ID
            certs.mkdir(parents=True)
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                            "-subj", "/CN=www.example.com", "-keyout", str(certs / "k"),
                            "-out", str(certs / "c")], check=True, capture_output=True)
            (certs / "default.pem").write_bytes((certs / "c").read_bytes()
                                                + (certs / "k").read_bytes())
            (Path(tmp) / LB_ID).mkdir()
            (Path(tmp) / LB_ID / "servers-state").write_text("1\n")
            text = render(doc, amphora_id=AMP, target=self.target, options=options,
                          base_path=str(inside), cert_dir=str(inside / "certs"))
            (Path(tmp) / "haproxy.cfg").write_text(text)
            done = subprocess.run([*self.prefix, "/usr/sbin/haproxy", "-c", "-f",
                                   str(inside / "haproxy.cfg")],
                                  capture_output=True, text=True, timeout=120, check=False)
            assert done.returncode == 0, f"{self.target.haproxy}: {done.stdout}{done.stderr}"
            assert "[WARNING]" not in done.stdout + done.stderr, done.stdout + done.stderr
        return text


@pytest.fixture(scope="module")
def releases() -> dict[str, Release]:
    return {name: Release(suite) for name, suite in RELEASES.items()}


def test_releases_carry_the_expected_haproxy_and_openssl(releases: dict[str, Release]) -> None:
    facts = {name: (r.target.haproxy.short, r.target.openssl.major, "QUIC" in r.target.build)
             for name, r in releases.items()}
    assert facts["bookworm"] == ("2.6", 3, False)
    assert facts["trixie"][:2] == ("3.0", 3) and releases["trixie"].target.openssl.minor >= 5
    # Debian's next release carries 3.2 LTS now; a newer branch there must still pass
    assert releases["next"].target.haproxy >= Version(3, 2)


def test_same_lb_renders_what_each_release_can_do(releases: dict[str, Release]) -> None:
    options = RenderOptions(ocsp_update=True)
    configs = {name: r.check(lb(["h2", "http/1.1"]), options)
               for name, r in releases.items()}
    old = configs["bookworm"]
    assert 'alpn "h2' not in old and "glitches-threshold" not in old
    assert "ocsp-update" not in old
    for name in ("trixie", "next"):
        new = configs[name]
        assert new.count('alpn "h2,http/1.1"') == 2, name  # the bind and the server line
        assert "tune.h2.fe.glitches-threshold 1000" in new
        assert "tune.h2.be.glitches-threshold 1000" in new
        assert "ocsp-update.mode on" in new


def test_http2_only_listener_is_refused_by_bookworm(releases: dict[str, Release]) -> None:
    with pytest.raises(CapabilityError) as info:
        releases["bookworm"].check(lb(["h2"]), RenderOptions())
    assert "HTTP/2 towards clients" in info.value.message
    assert "needs HAProxy >= 3.0, target has 2.6" in info.value.message
    for name in ("trixie", "next"):
        assert 'alpn "h2"' in releases[name].check(lb(["h2"]), RenderOptions())


def test_http3_listener_where_the_build_has_quic(releases: dict[str, Release]) -> None:
    with pytest.raises(CapabilityError, match="QUIC"):
        releases["bookworm"].check(lb(["h3", "h2", "http/1.1"]), RenderOptions())
    compat = releases["trixie"].check(lb(["h3", "h2", "http/1.1"]), RenderOptions())
    native = releases["next"].check(lb(["h3", "h2", "http/1.1"]), RenderOptions())
    for text in (compat, native):
        assert "bind quic4@203.0.113.10:443 ssl " in text and " alpn h3\n" in text
        assert 'alt-svc "h3=\\":443\\"; ma=900"' in text
    # trixie's 3.0 reaches QUIC through OpenSSL's compatibility layer; 3.2 on OpenSSL
    # 3.5+ uses OpenSSL's own QUIC API
    assert "limited-quic" in compat and "limited-quic" not in native
