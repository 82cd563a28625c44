"""Property-based requests from the OpenAPI document: whatever a client
sends, the agent answers with a deliberate status, never a 500.

Network endpoints are left out here: they act on the host's namespaces and
have their own schema tests (tests/unit/network) and integration tests.
"""

from __future__ import annotations

from importlib import resources

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

SPEC = str(resources.files("amphora_agent").joinpath("openapi.yaml"))
schema = schemathesis.openapi.from_path(SPEC).exclude(path_regex=r"^/1\.0/(plug|interface)/")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_makes_the_agent_fail(case, app) -> None:  # type: ignore[no-untyped-def]
    response = case.call(app=app)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:300])
    case.validate_response(response, checks=[not_a_server_error])
