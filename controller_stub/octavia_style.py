"""HAProxy configs shaped like the ones Octavia's controller renders, for agent
tests and benchmarks that must not depend on our own renderer."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class OctaviaStyleConfig:
    amphora_id: str
    lb_id: str
    listener_id: str
    pool_id: str
    base_path: str
    bind: str  # "address:port"
    members: list[tuple[str, str]] = field(default_factory=list)  # (id, "addr:port")
    peer_name: str | None = None
    peer_address: str | None = None
    prometheus_bind: str | None = None
    body: str | None = None  # answer from HAProxy itself instead of members
    extra_global: list[str] = field(default_factory=list)
    mode: str = "http"
    extra_frontend: list[str] = field(default_factory=list)

    def render(self) -> str:
        g = [
            f"# Configuration for loadbalancer {self.lb_id}",
            "global",
            "    daemon",
            "    user nobody",
            f"    stats socket {self.base_path}/{self.lb_id}.sock mode 0600 level admin",
            f"    server-state-file {self.base_path}/{self.lb_id}/servers.state",
            "    maxconn 1000",
            "    hard-stop-after 30s",
            *(f"    {line}" for line in self.extra_global),
            "",
            "defaults",
            "    log global",
            "    retries 3",
            "    option redispatch",
            "    load-server-state-from-file global",
            "    timeout connect 5s",
            "    timeout client 30s",
            "    timeout server 30s",
            "",
        ]
        if self.peer_name and self.peer_address:
            g += [f"peers {self.lb_id.replace('-', '')}_peers",
                  f"    peer {self.peer_name} {self.peer_address}", ""]
        g += [f"frontend {self.listener_id}", "    maxconn 1000", f"    bind {self.bind}",
              f"    mode {self.mode}"]
        g += [f"    {line}" for line in self.extra_frontend]
        if self.body is not None:
            g += [f"    http-request return status 200 content-type text/plain "
                  f"string {self.body}"]
        g += [f"    default_backend {self.pool_id}:{self.listener_id}", "",
              f"backend {self.pool_id}:{self.listener_id}", f"    mode {self.mode}",
              "    balance roundrobin", "    option allbackups"]
        g += [f"    server {mid} {addr} weight 1 check inter 1s fall 2 rise 1"
              for mid, addr in self.members]
        g.append("")
        if self.prometheus_bind:
            g += ["frontend prometheus-exporter-internal-endpoint",
                  f"    bind {self.prometheus_bind}", "    mode http", "    no log",
                  "    http-request use-service prometheus-exporter if { path /metrics }",
                  "    http-request reject", ""]
        return "\n".join(g)
