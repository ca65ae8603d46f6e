"""The `generic` recipes in mappings/ for senders that sign nothing (Zoho CRM, Zoho Forms,
Pipedrive, LeadSquared, Google Forms), through the real intake: the credential their sender
is set up to send is accepted, and a request without it, or with a wrong one, is 401 with
nothing stored."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import MAPPINGS
from tests.support.admin_app import serve_folder

EXAMPLES = MAPPINGS / "examples"
TOKEN = "k3J9vQ2mX7pL4tR8wZ1nB6cF0hD5sG3a"
BASIC = "pipedrive:" + TOKEN
FORM = "application/x-www-form-urlencoded"


def _basic(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


# mapping, its secret's variable, the example it posts, its content type, the credential as
# the sender sends it, and the same with a wrong secret
RECIPES = [
    ("zoho-crm-leads", "ZOHO_CRM_TOKEN", "zoho-crm-lead.txt", FORM,
     {"X-Relay-Token": TOKEN}, {"X-Relay-Token": TOKEN[:-1] + "b"}),
    ("zoho-forms", "ZOHO_FORMS_TOKEN", "zoho-forms-entry.json", "application/json",
     {"X-Relay-Token": TOKEN}, {"X-Relay-Token": "x" + TOKEN}),
    ("pipedrive-persons", "PIPEDRIVE_WEBHOOK_AUTH", "pipedrive-person-created.json",
     "application/json", _basic(BASIC), _basic("pipedrive:" + TOKEN.upper())),
    ("leadsquared-leads", "LEADSQUARED_TOKEN", "leadsquared-lead-created.json",
     "application/json", {"X-Relay-Token": TOKEN}, {"X-Relay-Token": ""}),
    ("google-forms", "GOOGLE_FORMS_TOKEN", "google-forms-response.json", "application/json",
     {"X-Relay-Token": TOKEN}, {"X-Relay-Token": TOKEN.lower()}),
]
IDS = [recipe[0] for recipe in RECIPES]


@pytest.fixture
def client(tmp_path, monkeypatch):
    for _, variable, *_ in RECIPES:
        monkeypatch.setenv(variable, BASIC if variable == "PIPEDRIVE_WEBHOOK_AUTH" else TOKEN)
    served = serve_folder(MAPPINGS, tmp_path / "relay.db")
    yield served.client(), served.store
    served.store.dispose()


@pytest.mark.parametrize(("name", "variable", "example", "content_type", "good", "wrong"),
                         RECIPES, ids=IDS)
class TestGenericRecipes:
    def test_the_credential_the_sender_sends_is_accepted(self, client, name, variable,
                                                         example, content_type, good, wrong):
        """The example body with the credential as the docs tell the sender to send it is
        stored (202)."""
        http, store = client
        raw = (EXAMPLES / example).read_bytes()
        response = http.post(f"/hooks/{name}", data=raw,
                             headers={"Content-Type": content_type, **good})
        assert response.status_code == 202, response.get_json()
        (event,) = store.events()
        assert TOKEN not in str(store.event(event["id"]))  # the credential is redacted

    @pytest.mark.parametrize("credential", ["none", "wrong", "elsewhere"])
    def test_a_missing_or_wrong_credential_is_401_and_nothing_is_stored(
            self, client, name, variable, example, content_type, good, wrong, credential):
        """Without the credential, with a wrong one, or with the right one where the recipe
        does not look for it (the query instead of a header): 401, nothing stored."""
        http, store = client
        raw = (EXAMPLES / example).read_bytes()
        headers = {"Content-Type": content_type}
        query = {}
        if credential == "wrong":
            headers.update(wrong)
        elif credential == "elsewhere":
            query = {"token": TOKEN, "X-Relay-Token": TOKEN, "authorization": BASIC}
        response = http.post(f"/hooks/{name}", data=raw, headers=headers, query_string=query)
        assert (response.status_code, response.get_json()) == (401, {"error": "invalid signature"})
        assert store.events() == []
