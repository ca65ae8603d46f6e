"""schemathesis against the OpenAPI document of /api (relay/web/openapi.py, served at
/api/openapi.json), in process: every operation, with data the document allows and data it
does not, must answer as the document says (no 500; documented status codes, headers and
bodies; 405 with Allow; invalid input refused, valid input accepted; auth enforced).

Bounded and repeatable for CI: a fixed number of examples per operation, derandomized, no
deadline (a slow machine is not a finding)."""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
import schemathesis

from relay.web.limits import RateLimit
from relay.web.openapi import OPENAPI
from relay.web.services import services
from tests.support.admin_app import BEARER, TOKEN, make_admin

MAPPING = """
id: body.id
phone: {path: body.phone, region: IN}
attributes:
  name: {path: body.name, required: true}
flows:
  - flow_key: ABC
"""


class _App:
    """The WSGI app schemathesis calls, there at import time (schemathesis parametrizes the
    test then) and pointed at the module's app by the fixture."""

    app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.app(environ, start_response)


APP = _App()
CONFIG = {
    # The token goes as the document's `bearer` scheme says; schemathesis leaves it out or
    # spoils it where it checks that auth is enforced.
    "auth": {"openapi": {"bearer": {"bearer": TOKEN}}},
    # Replaying an event that still fails its mapping is answered 422 with what failed, as
    # documented; for a well-formed request schemathesis expects no 422 unless told so.
    "operations": [{
        "include-path": "/api/events/{event_id}/replay",
        "checks": {"positive_data_acceptance": {
            "expected-statuses": ["2xx", "401", "403", "404", "422", "429", "503"]}}},
        # Sending now or cancelling a delivery that is not pending (delivered, dead, or
        # cancelled already by an earlier case) is answered 409 saying why, as documented.
        *({"include-path": path, "checks": {"positive_data_acceptance": {
            "expected-statuses": ["2xx", "401", "403", "404", "409", "429", "503"]}}}
          for path in ("/api/deliveries/{delivery_id}/send-now",
                       "/api/deliveries/{delivery_id}/cancel")),
        # The playground refuses a YAML longer than the document allows as too large (413),
        # as it does a body over RELAY_MAX_BODY.
        *({"include-path": path, "checks": {"negative_data_rejection": {
            "expected-statuses": ["400", "401", "403", "404", "405", "413", "429"]}}}
          for path in ("/api/playground", "/api/playground/save"))],
}
# The document as the code has it; test_the_document_is_the_one_served checks /api serves it.
schema = schemathesis.openapi.from_dict(OPENAPI, config=schemathesis.Config.from_dict(CONFIG))
schema.app = APP


@pytest.fixture(scope="module")
def admin(tmp_path_factory):
    admin = make_admin(tmp_path_factory.mktemp("api-schema"), MAPPING)
    # schemathesis sends wrong tokens on purpose (to see that auth is enforced); the limit
    # on them is tested in test_auth.py and must not turn this run into 429s.
    services(admin.app).login_limit = RateLimit(10**9)
    APP.app = admin.app
    hooks = admin.client()
    # Event 1 failed its mapping (id 1 is the smallest the document allows: tried first),
    # 2 delivered, 3 dead, 4 pending.
    hooks.post("/hooks/leads", json={"id": "1", "phone": "nope", "name": "Zoe"})
    hooks.post("/hooks/leads", json={"id": "2", "phone": "+919812345678", "name": "Asha"})
    admin.attempt("delivered", 200)
    hooks.post("/hooks/leads", json={"id": "3", "phone": "+919812345679", "name": "Ravi"})
    admin.attempt("dead", 400, "Engati answered HTTP 400")
    hooks.post("/hooks/leads", json={"id": "4", "phone": "+919812345670", "name": "Ila"})
    yield admin
    admin.store.dispose()


def test_the_document_is_the_one_served(admin):
    assert admin.client().get("/api/openapi.json", headers=BEARER).get_json() == OPENAPI


@schema.parametrize()
@hypothesis.settings(max_examples=500, deadline=None, derandomize=True, database=None)
def test_the_api_answers_as_its_openapi_document_says(case, admin):
    case.call_and_validate()
