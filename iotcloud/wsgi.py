"""gunicorn entry point: `gunicorn iotcloud.wsgi:app`."""

import atexit

from gateways.http.app import create_app
from iotcloud import logs
from iotcloud.bootstrap import build_platform
from iotcloud.config import Settings
from iotcloud.gc_freeze import freeze_startup_objects

settings = Settings.from_env()
logs.configure(settings.log_level, queued=True)
platform = build_platform(settings)
app = create_app(platform)
freeze_startup_objects()  # per worker: gunicorn imports this module after the fork
# A worker stopped by SIGTERM first finishes its requests (gunicorn's graceful timeout), then exits
# normally: outcomes queued for the next shared commit and codes still to send go out before it does.
atexit.register(platform.close)
