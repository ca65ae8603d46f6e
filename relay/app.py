"""The WSGI entry point the Procfile and deployments name: `gunicorn 'relay.app:create_app()'`.

The factory itself is relay/web/app.py; this name stays so that existing deployments keep
working.
"""

from relay.web.app import create_app

__all__ = ["create_app"]
