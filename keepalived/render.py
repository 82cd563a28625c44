"""Render one amphora's keepalived config from a :class:`VrrpInstance`.

The model has already validated every value against a whole-string pattern,
so the template only places them; ``StrictUndefined`` makes a missing value an
error rather than an empty word.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from keepalived.model import VIP_RULE_PRIORITY, VIP_TABLE, Role, VrrpInstance

TEMPLATE_DIR = Path(__file__).parent / "templates"


def _environment() -> jinja2.Environment:
    # keepalived config, not HTML: every value is already validated.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=False,  # noqa: S701
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True)


def render(instance: VrrpInstance) -> str:
    """The keepalived.conf text for this amphora (upload it with PUT /1.0/vrrp/upload)."""
    if not isinstance(instance, VrrpInstance):
        raise TypeError("render() takes a VrrpInstance")
    # Both sides start BACKUP: keepalived requires it for nopreempt and for
    # preempt_delay, and the priority alone then decides the election.
    state = Role.BACKUP.value
    short = instance.instance_name[:16]
    return _environment().get_template("keepalived.conf.j2").render(
        v=instance, state=state, table=VIP_TABLE, rule_priority=VIP_RULE_PRIORITY,
        track_name=f"haproxy_{short}", bfd_name=f"bfd_{short}",
        default="default" if instance.vip.version == 4 else "default6")
