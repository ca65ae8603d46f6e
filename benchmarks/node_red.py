"""Node-RED as a peer in `e2e.py`: installed from npm on first use, its flow and settings
written for each run, started on a free port on 127.0.0.1 and stopped with its process group.

The flow is what a Node-RED user builds for the same job as the naive relay:

    http in (POST /hooks/typeform, body not parsed)
      -> function "verify and map": Typeform's signature (the base64 HMAC-SHA256 of the raw
         body after `sha256=`, as relay/sources/typeform.py checks it), then the naive
         relay's Engati body (references.py: the same keys, taken from the same answers)
      -> http request (POST to the Engati stand-in, connections kept alive like the naive
         relay's shared httpx client)
      -> function "answer": 200 if Engati answered 200, else 502
      -> http response

so, like the naive relay, a sender is answered only once Engati has answered. A forged
signature goes from the function's second output to the http response with 401.
Nothing of Node-RED is committed: it lives in benchmarks/.node-red/ (ignored by git).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

from harness import HERE

VERSION = "4.1.15"  # the last line that runs on Node 20 (5.x needs Node 22.9 or later)
FOLDER = HERE / ".node-red"
USER_DIR = FOLDER / "user"
PATH = "/hooks/typeform"

# Runs in Node-RED's function sandbox; `crypto` comes in through the node's `libs`.
VERIFY_AND_MAP = r"""
const raw = msg.payload;  // a Buffer: the http in node skips body parsing
const given = Buffer.from(String(msg.req.headers["typeform-signature"] || ""));
const digest = crypto.createHmac("sha256", env.get("TYPEFORM_SECRET")).update(raw).digest("base64");
const expected = Buffer.from("sha256=" + digest);
if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
    msg.statusCode = 401;
    msg.payload = {error: "the Typeform-Signature header does not match the body"};
    return [null, msg];
}
let body;
try {
    body = JSON.parse(raw.toString("utf8"));
} catch (err) {
    msg.statusCode = 400;
    msg.payload = {error: "the body is not JSON"};
    return [null, msg];
}
const response = body.form_response || {};
const answers = response.answers || [];
const first = (test, value) => {
    const answer = answers.find(test);
    return answer === undefined ? null : value(answer);
};
msg.payload = {
    "user.channel": "whatsapp",
    "user.phone_no": first(a => a.type === "phone_number", a => a.phone_number),
    "name": first(a => a.field && a.field.ref === "name", a => a.text),
    "email": first(a => a.type === "email", a => a.email),
    "category": first(a => a.field && a.field.ref === "category", a => a.choice && a.choice.label),
    "utm_source": response.hidden ? response.hidden.utm_source : null,
};
msg.headers = {"Authorization": "Basic bench-key"};
return [msg, null];
"""

# The http request node leaves Engati's status, headers and body on the message; the sender
# gets none of them but the verdict.
ANSWER = r"""
msg.statusCode = msg.statusCode === 200 ? 200 : 502;
msg.payload = "";
msg.headers = {};
return msg;
"""


def install() -> Path:
    """Node-RED's red.js, installed into benchmarks/.node-red/ if it is not there yet."""
    red = FOLDER / "node_modules" / "node-red" / "red.js"
    package = red.with_name("package.json")
    if package.exists() and json.loads(package.read_text())["version"] == VERSION:
        return red
    if not shutil.which("node") or not shutil.which("npm"):
        raise SystemExit("Node-RED needs node (18.5 or later) and npm: apt-get install nodejs "
                         "npm, or leave it out with --systems bare,naive,relay")
    FOLDER.mkdir(exist_ok=True)
    print(f"installing node-red@{VERSION} into {FOLDER} (once)", flush=True)
    subprocess.run(["npm", "install", "--prefix", str(FOLDER), "--no-audit", "--no-fund",
                    "--loglevel", "error", f"node-red@{VERSION}"], cwd=FOLDER, check=True)
    return red


def flow(engati_url: str) -> list[dict]:
    tab = "bench"
    nodes = [
        {"id": tab, "type": "tab", "label": "relay benchmark"},
        {"id": "in", "type": "http in", "z": tab, "url": PATH, "method": "post",
         "upload": False, "skipBodyParsing": True, "wires": [["verify"]]},
        {"id": "verify", "type": "function", "z": tab, "name": "verify and map",
         "func": VERIFY_AND_MAP, "outputs": 2, "libs": [{"var": "crypto", "module": "crypto"}],
         "wires": [["engati"], ["out"]]},
        {"id": "engati", "type": "http request", "z": tab, "method": "POST", "ret": "txt",
         "paytoqs": "ignore", "url": engati_url, "persist": True, "senderr": False,
         "headers": [], "wires": [["answer"]]},
        {"id": "answer", "type": "function", "z": tab, "name": "answer", "func": ANSWER,
         "outputs": 1, "libs": [], "wires": [["out"]]},
        {"id": "out", "type": "http response", "z": tab, "statusCode": "", "headers": {},
         "wires": []},
    ]
    for column, node in enumerate(nodes[1:]):  # a node without x and y loads as a config node
        node.update(x=100 + 200 * column, y=100)
    return nodes


def settings(port: int) -> str:
    """settings.js: 127.0.0.1 only, no editor or admin API, warnings and errors logged."""
    values = {
        "uiHost": "127.0.0.1",
        "uiPort": port,
        "httpAdminRoot": False,  # no editor, no admin API: nothing to authenticate
        "httpNodeRoot": "/",
        "userDir": str(USER_DIR),
        "flowFile": "flows.json",
        "credentialSecret": False,
        "functionExternalModules": True,  # `libs` (crypto, a built-in) in the function node
        "externalModules": {"autoInstall": False},
        "diagnostics": {"enabled": False},
        "runtimeState": {"enabled": False},
        "telemetry": {"enabled": False},
        "logging": {"console": {"level": "warn", "metrics": False, "audit": False}},
    }
    return f"module.exports = {json.dumps(values, indent=2)};\n"


def start(port: int, engati_url: str, secret: str, log: Path) -> subprocess.Popen:
    """Node-RED on `port`, in a process group of its own so that `stop` ends all of it."""
    red = install()
    USER_DIR.mkdir(parents=True, exist_ok=True)
    (USER_DIR / "flows.json").write_text(json.dumps(flow(engati_url), indent=2))
    (USER_DIR / "settings.js").write_text(settings(port))
    env = {**os.environ, "TYPEFORM_SECRET": secret}
    return subprocess.Popen(["node", str(red), "--settings", str(USER_DIR / "settings.js"),
                             "--userDir", str(USER_DIR)], env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the group, SIGKILL if it has not gone after 30 s."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    except ProcessLookupError:
        pass
