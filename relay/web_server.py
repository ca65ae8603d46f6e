"""The gunicorn worker class the Procfile and deployments name: `relay.web_server.Worker`.

The class itself is relay/web/server.py; this name stays so that existing deployments keep
working.
"""

from relay.web.server import Worker

__all__ = ["Worker"]
