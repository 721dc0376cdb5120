"""gunicorn entry point: `gunicorn iotcloud.wsgi:app`."""

from gateways.http.app import create_app
from iotcloud import logs
from iotcloud.bootstrap import build_platform
from iotcloud.config import Settings

settings = Settings.from_env()
logs.configure(settings.log_level)
app = create_app(build_platform(settings))
