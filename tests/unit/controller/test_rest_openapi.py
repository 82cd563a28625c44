"""The OpenAPI document is generated from the models and matches the served
routes both ways: every route is documented, every documented path is served."""

from __future__ import annotations

from pathlib import Path

from controller_stub.controller.rest.openapi import openapi_path
from tests.unit.controller.rest_helpers import Api


def test_openapi_matches_served_routes(tmp_path: Path) -> None:
    api = Api(tmp_path)
    doc = api.client.get("/v2/openapi.json").json
    documented = {(path, method.upper()) for path, ops in doc["paths"].items()
                  for method in ops}
    served = {(openapi_path(rule.rule), method) for rule in api.app.url_map.iter_rules()
              if rule.rule.startswith("/v2/") and rule.endpoint != "openapi_document"
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == served
    # the same routes are served under /v2.0
    served20 = {(openapi_path(rule.rule).replace("/v2.0/", "/v2/", 1), method)
                for rule in api.app.url_map.iter_rules() if rule.rule.startswith("/v2.0/")
                for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert served20 == served
    post = doc["paths"]["/v2/lbaas/loadbalancers"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["loadbalancer"] == {
        "$ref": "#/components/schemas/LoadBalancerPOST"}
    schema = doc["components"]["schemas"]["LoadBalancerPOST"]
    assert schema["additionalProperties"] is False
    assert "201" in post["responses"]
    assert set(doc["paths"]["/v2/lbaas/pools/{pool_id}/members"]) == {"get", "post", "put"}
