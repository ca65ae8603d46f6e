"""The two reference points every end-to-end figure is a ratio of, served by gunicorn with as
many processes and threads as the relay (2 workers x 8 threads), on gunicorn's own gthread
worker (the relay's web processes run relay.web_server.Worker):

    gunicorn --chdir benchmarks 'references:bare()'    read the body, answer 200
    gunicorn --chdir benchmarks 'references:naive()'   Flask + JMESPath + one httpx POST to
                                                       ENGATI_URL, answering after Engati

The naive relay is what a first integration looks like: no signature check, no storage, no
retry; a sender is answered only once Engati has answered, and whatever fails is lost.
"""

from __future__ import annotations

import os

import httpx
import jmespath
from flask import Flask, request


def bare() -> Flask:
    app = Flask(__name__)

    @app.post("/hooks/<name>")
    def hook(name: str):
        request.get_data()
        return "", 200

    return app


def naive() -> Flask:
    app = Flask(__name__)
    answers = "form_response.answers"
    fields = {
        "user.phone_no": jmespath.compile(f"{answers}[?type=='phone_number'].phone_number | [0]"),
        "name": jmespath.compile(f"{answers}[?field.ref=='name'].text | [0]"),
        "email": jmespath.compile(f"{answers}[?type=='email'].email | [0]"),
        "category": jmespath.compile(f"{answers}[?field.ref=='category'].choice.label | [0]"),
        "utm_source": jmespath.compile("form_response.hidden.utm_source"),
    }
    engati = httpx.Client(headers={"Authorization": "Basic bench-key"})  # keep-alive, shared
    url = os.environ["ENGATI_URL"]

    @app.post("/hooks/<name>")
    def hook(name: str):
        body = request.get_json()
        payload = {"user.channel": "whatsapp"}
        payload.update({key: expression.search(body) for key, expression in fields.items()})
        answer = engati.post(url, json=payload)
        return "", 200 if answer.status_code == 200 else 502

    return app
