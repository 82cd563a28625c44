"""Where ``amphora-ctl`` finds the controller's API, and the openstacksdk connection to it.

In order: ``--os-cloud`` (a ``clouds.yaml`` entry, Keystone or
``auth_type: none`` with ``load_balancer_endpoint_override``), else
``--os-endpoint``/``--url`` or ``$AMPHORA_URL`` / ``$OS_ENDPOINT``, with a
static token from ``--os-token``/``$OS_TOKEN`` (sent as ``X-Auth-Token``) or
none, and the project from ``--os-project-id``/``$OS_PROJECT_ID`` (sent as
``X-Project-Id``, which an API without auth honours, as it honours
``--os-roles``/``$OS_ROLES`` in ``X-Roles``), else ``$OS_CLOUD``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("API endpoint")
    group.add_argument("--os-cloud", default=None,
                       help="clouds.yaml entry (default: $OS_CLOUD when no URL is given)")
    group.add_argument("--os-endpoint", "--url", dest="os_endpoint", default=None,
                       help="API URL, e.g. http://127.0.0.1:9876 "
                            "(default: $AMPHORA_URL or $OS_ENDPOINT)")
    group.add_argument("--os-token", default=None,
                       help="static bearer token (default: $OS_TOKEN)")
    group.add_argument("--os-project-id", default=None,
                       help="project to act as, without auth (default: $OS_PROJECT_ID)")
    group.add_argument("--os-roles", default=None,
                       help="roles to claim, without auth, e.g. admin (default: $OS_ROLES)")
    group.add_argument("--debug", action="store_true", help="show tracebacks")


def _url(args: argparse.Namespace) -> str | None:
    url = args.os_endpoint or os.environ.get("AMPHORA_URL") or os.environ.get("OS_ENDPOINT")
    if not url:
        return None
    url = url.rstrip("/")
    for suffix in ("/v2.0", "/v2"):
        url = url.removesuffix(suffix)
    return url  # the SDK finds /v2 in the version document at the root


def connect(args: argparse.Namespace) -> Any:
    """An ``openstack.connection.Connection`` whose ``load_balancer`` proxy is the API."""
    import openstack
    from keystoneauth1 import noauth, session, token_endpoint

    url = _url(args)
    cloud = args.os_cloud or (None if url else os.environ.get("OS_CLOUD"))
    if cloud:
        return openstack.connect(cloud=cloud, load_balancer_api_version="2")
    if url is None:
        raise ValueError("no API endpoint: pass --os-endpoint URL or --os-cloud NAME, or set "
                         "AMPHORA_URL or OS_CLOUD")
    token = args.os_token or os.environ.get("OS_TOKEN")
    project = args.os_project_id or os.environ.get("OS_PROJECT_ID")
    auth = token_endpoint.Token(url, token) if token else noauth.NoAuth(endpoint=url)
    roles = args.os_roles or os.environ.get("OS_ROLES")
    headers = {**({"X-Project-Id": project} if project else {}),
               **({"X-Roles": roles} if roles else {})}
    sess = session.Session(auth=auth, additional_headers=headers)
    return openstack.connection.Connection(session=sess, load_balancer_endpoint_override=url,
                                           load_balancer_api_version="2")
