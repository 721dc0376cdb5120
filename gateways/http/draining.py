"""Whether this API process has been asked to stop.

gunicorn's SIGTERM lets a worker finish the requests it holds before it exits, and the supervisor
kills one that has not exited 10 s later. A long poll would hold its request (up to 20 s) to the
end, so the worker was killed with it and the browser saw a dropped connection. Once this is set,
requests that only wait answer at once and tell the client when to ask again (of another worker,
or of this one restarted). Process-wide because a signal is: the worker sets it from its handler.
"""

from __future__ import annotations

import threading

STOPPING = threading.Event()
