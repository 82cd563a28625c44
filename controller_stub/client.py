"""Agent client for the controller: requests over mutual TLS.

The agent's certificate names the amphora id, not its address, so the
connection is made to the address while SNI and the hostname check use the
amphora id (what Octavia's controller does too). Connection errors,
timeouts and "agent not ready" answers are retried; every handler on the
agent is idempotent, so retrying a PUT or POST is safe.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from amphora_contract import api
from amphora_contract.api import API_VERSION, NOT_READY_DETAIL

LOG = logging.getLogger(__name__)
# The largest answers are a downloaded HAProxy config and /details; the agent
# accepts uploads up to its max_body_size (16 MiB by default), so a config it
# stored can always be read back.
DEFAULT_MAX_RESPONSE_SIZE = 16 * 1024 * 1024
_READ_CHUNK = 64 * 1024
__all__ = ["NOT_READY_DETAIL", "AgentClient", "AgentError", "AgentUnreachable"]


class AgentError(Exception):
    """An error status from the agent; ``body`` is the decoded JSON, if any."""

    status: int = 0

    def __init__(self, status: int, body: Any, text: str = "") -> None:
        self.status = status
        self.body = body
        detail = api.error_detail(body) if isinstance(body, dict) else text[:200]
        super().__init__(f"agent returned {status}: {detail}")


class BadRequest(AgentError): ...
class Unauthorized(AgentError): ...
class Forbidden(AgentError): ...
class NotFound(AgentError): ...
class MethodNotAllowed(AgentError): ...
class Conflict(AgentError): ...
class PayloadTooLarge(AgentError): ...
class InternalServerError(AgentError): ...
class ServiceUnavailable(AgentError): ...


class AgentUnreachable(Exception):
    """No answer after every retry."""


class ResponseTooLarge(Exception):
    """The agent's answer exceeds ``max_response_size``; it was not read in full."""


class UnsupportedAPIVersion(Exception):
    pass


_ERRORS: dict[int, type[AgentError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound,
    405: MethodNotAllowed, 409: Conflict, 413: PayloadTooLarge,
    500: InternalServerError, 503: ServiceUnavailable,
}


class _AmphoraAdapter(HTTPAdapter):
    """Verifies the server certificate against the amphora id, not the URL host."""

    def __init__(self, ssl_context: ssl.SSLContext, server_name: str, **kwargs: Any) -> None:
        self._ssl_context = ssl_context
        self._server_name = server_name
        super().__init__(**kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        """Our context already holds the CA and client cert; requests would
        otherwise load its CA bundle into it on every new connection (~20 ms)."""
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._ssl_context
        kwargs["assert_hostname"] = self._server_name
        kwargs["server_hostname"] = self._server_name
        super().init_poolmanager(*args, **kwargs)


@dataclass
class Timeouts:
    connect: float = 5.0
    read: float = 60.0


class AgentClient:
    """One amphora's agent.

    ``client_cert`` is a PEM with the controller's certificate and key;
    ``ca_file`` is the CA that signed the agent's server certificate.
    """

    def __init__(self, address: str, amphora_id: str, *, ca_file: str, client_cert: str,
                 port: int = 9443, timeouts: Timeouts | None = None, retries: int = 30,
                 retry_interval: float = 0.5, keep_alive: bool = True,
                 tls_version: ssl.TLSVersion | None = None,
                 max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE) -> None:
        host = f"[{address}]" if isinstance(ipaddress.ip_address(address),
                                            ipaddress.IPv6Address) else address
        self.base_url = f"https://{host}:{port}"
        self.amphora_id = amphora_id
        self.timeouts = timeouts or Timeouts()
        self.retries = retries
        self.retry_interval = retry_interval
        self.keep_alive = keep_alive
        self.max_response_size = max_response_size
        context = ssl.create_default_context(cafile=ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if tls_version is not None:
            context.minimum_version = context.maximum_version = tls_version
        context.load_cert_chain(client_cert)
        self._context = context
        self.session = self._new_session()

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # never route the management network through a proxy
        session.mount("https://", _AmphoraAdapter(self._context, self.amphora_id))
        return session

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------

    @staticmethod
    def _not_ready(response: requests.Response) -> bool:
        if response.status_code != 404:
            return False
        try:
            body = response.json()
        except ValueError:
            body = None
        return api.is_not_ready(response.status_code, body)

    def request(self, method: str, path: str, *, retry_not_ready: bool = True,
                retries: int | None = None, **kwargs: Any) -> requests.Response:
        """Send one request, retrying what Octavia's controller retries."""
        url = self.base_url + path
        retries = self.retries if retries is None else retries
        kwargs.setdefault("timeout", (self.timeouts.connect, self.timeouts.read))
        headers = kwargs.pop("headers", {}) or {}
        if not self.keep_alive:
            headers["Connection"] = "close"
        last: Exception | None = None
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(self.retry_interval)
            try:
                response = self.session.request(method, url, headers=headers, stream=True,
                                                **kwargs)
                self._read_bounded(response, f"{method} {path}")
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = exc
                LOG.debug("%s %s: %s (attempt %d)", method, path, exc, attempt + 1)
                continue
            if retry_not_ready and self._not_ready(response) and attempt < retries:
                last = None
                continue
            self._raise_for_status(response)
            return response
        if last is None:
            self._raise_for_status(response)
            return response
        raise AgentUnreachable(f"{method} {url}: no answer after {retries + 1} attempts: "
                               f"{last}") from last

    def _read_bounded(self, response: requests.Response, what: str) -> None:
        """Read the body (decoded) into ``response``, refusing more than
        ``max_response_size`` bytes: a hostile or broken agent can't make
        the controller buffer an unbounded answer."""
        limit = self.max_response_size
        with response:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise ResponseTooLarge(f"{what}: agent announced {int(declared)} bytes, "
                                       f"more than the {limit} allowed")
            body = bytearray()
            for chunk in response.iter_content(_READ_CHUNK):
                body += chunk
                if len(body) > limit:
                    raise ResponseTooLarge(f"{what}: agent answer exceeds {limit} bytes")
        # requests keeps a streamed body here once read; .json()/.text use it
        response._content = bytes(body)

    @staticmethod
    def _raise_for_status(response: requests.Response) -> None:
        if response.status_code < 400:
            return
        try:
            body = response.json()
        except ValueError:
            body = None
        error = _ERRORS.get(response.status_code, AgentError)
        raise error(response.status_code, body, response.text)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    # -- API -----------------------------------------------------------------

    def api_version(self) -> str:
        """Version discovery; only 1.0 is spoken."""
        version = self._json("GET", "/").get("api_version")
        if version != API_VERSION:
            raise UnsupportedAPIVersion(f"agent speaks API {version!r}, not {API_VERSION!r}")
        return version

    def answers(self) -> bool:
        """One quick ``GET /`` without retries: is the agent up?"""
        try:
            self.request("GET", "/", retries=0, timeout=(1.0, 5.0))
        except (AgentUnreachable, requests.RequestException):
            return False
        return True

    def root(self) -> dict[str, Any]:
        return self._json("GET", "/")

    def info(self) -> dict[str, Any]:
        return self._json("GET", "/1.0/info")

    def details(self) -> dict[str, Any]:
        return self._json("GET", "/1.0/details")

    def put_config(self, text: str | bytes) -> dict[str, Any]:
        return self._json("PUT", "/1.0/config", data=_bytes(text))

    def rotate_certificate(self, pem: bytes) -> dict[str, Any]:
        return self._json("PUT", "/1.0/certificate", data=pem)

    def upload_cert(self, lb_id: str, filename: str, pem: bytes) -> str:
        response = self.request("PUT", f"/1.0/loadbalancer/{lb_id}/certificates/{filename}",
                                data=pem)
        return response.headers.get("ETag", "")

    def cert_md5(self, lb_id: str, filename: str) -> str:
        return self._json("GET", f"/1.0/loadbalancer/{lb_id}/certificates/{filename}",
                          retry_not_ready=False)["md5sum"]

    def delete_cert(self, lb_id: str, filename: str) -> None:
        self.request("DELETE", f"/1.0/loadbalancer/{lb_id}/certificates/{filename}")

    # -- networking (POST bodies as Octavia's controller sends them) -------------

    def plug_vip(self, vip: str, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Plug the VIP port; a 404 "No suitable network interface found" is retried."""
        return self._json("POST", f"/1.0/plug/vip/{vip}", json=body, **kwargs)

    def plug_network(self, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._json("POST", "/1.0/plug/network", json=body, **kwargs)

    def get_interface(self, ip: str) -> str:
        """Name of the namespace interface that holds ``ip``."""
        return self._json("GET", f"/1.0/interface/{ip}", retry_not_ready=False)["interface"]

    def set_interface_rules(self, ip: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        return self._json("PUT", f"/1.0/interface/{ip}/rules", json=rules)

    # -- load balancers (HAProxy) -------------------------------------------

    def upload_haproxy(self, amphora_id: str, lb_id: str, config: str | bytes) -> str:
        """Install a config (validated by the agent); returns the ETag."""
        response = self.request("PUT", f"/1.0/loadbalancer/{amphora_id}/{lb_id}/haproxy",
                                data=_bytes(config))
        return response.headers.get("ETag", "")

    def get_haproxy(self, lb_id: str) -> str:
        return self.request("GET", f"/1.0/loadbalancer/{lb_id}/haproxy",
                            retry_not_ready=False).text

    def lb_action(self, lb_id: str, action: str) -> dict[str, Any]:
        """start, stop or reload (reload of a stopped LB starts it)."""
        return self._json("PUT", f"/1.0/loadbalancer/{lb_id}/{action}")

    def listeners(self) -> list[dict[str, str]]:
        return self._json("GET", "/1.0/listeners")

    def delete_listener(self, lb_id: str) -> None:
        self.request("DELETE", f"/1.0/listeners/{lb_id}")

    # -- keepalived: VRRP and UDP (LVS) listeners ------------------------------

    def upload_vrrp(self, config: str | bytes) -> str:
        """Install the amphora's keepalived config (validated by the agent); the ETag."""
        return self.request("PUT", "/1.0/vrrp/upload", data=_bytes(config)).headers.get(
            "ETag", "")

    def vrrp_action(self, action: str) -> dict[str, Any]:
        """start (reloads a running keepalived), stop or reload."""
        return self._json("PUT", f"/1.0/vrrp/{action}")

    def upload_udp_listener(self, amphora_id: str, listener_id: str,
                            config: str | bytes) -> str:
        response = self.request("PUT", f"/1.0/listeners/{amphora_id}/{listener_id}/udp_listener",
                                data=_bytes(config))
        return response.headers.get("ETag", "")

    def get_udp_listener(self, listener_id: str) -> str:
        return self.request("GET", f"/1.0/listeners/{listener_id}/udp_listener",
                            retry_not_ready=False).text

    # -- extension: metrics ---------------------------------------------------

    def metrics(self) -> str:
        """Prometheus text: the agent's counters and HAProxy's exporter per LB."""
        return self.request("GET", "/1.0/ext/metrics", retry_not_ready=False).text

    # -- extension: runtime member changes ------------------------------------

    def _servers_path(self, lb_id: str, backend: str) -> str:
        return f"/1.0/ext/loadbalancer/{lb_id}/backends/{backend}/servers"

    def list_servers(self, lb_id: str, backend: str) -> list[dict[str, Any]]:
        return self._json("GET", self._servers_path(lb_id, backend), retry_not_ready=False)

    def set_server(self, lb_id: str, backend: str, server: str, **change: Any) -> str:
        """Add or change a member; returns how it was applied (runtime/reload)."""
        return self._json("PUT", f"{self._servers_path(lb_id, backend)}/{server}",
                          json=change, retry_not_ready=False)["applied"]

    def delete_server(self, lb_id: str, backend: str, server: str) -> str:
        return self._json("DELETE", f"{self._servers_path(lb_id, backend)}/{server}",
                          retry_not_ready=False)["applied"]


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value
