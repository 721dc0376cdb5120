"""GET /v1/devices/_changes: a bounded long poll that answers as soon as the caller's device list changes.

Why a long poll and not a server-sent-event stream: the API runs gunicorn's gthread worker
(iotcloud/api_worker.py), where every open request holds one of a fixed pool of threads. A stream
per open browser tab would hold a thread for as long as the tab is open and starve everyone else.
A long poll holds its thread for at most MAX_WAIT seconds and takes its slot from the same bound as
device calls that wait for their devices (per user and in all, gateways/http/capacity.py), so
waiting requests of every kind together never take more than their share of the threads. A caller
over the bound is not refused (a 429 would be noise in the browser console): it gets the current
version at once and `retry_after`, the seconds to wait before asking again. So does a poll that is
waiting when the worker is asked to stop (gateways/http/draining.py).
"""

from __future__ import annotations

import threading
import time

from gateways.http.bodies import number_param, text_field
from gateways.http.capacity import Busy, ConcurrencyLimit
from queries.device_changes import DeviceListVersions

MAX_WAIT = 20        # seconds one poll may hold a thread
CHECK_EVERY = 0.25   # seconds between two looks at the read model while waiting
BUSY_RETRY_MAX = 10  # seconds a caller over the bound is told to wait, at most
STOPPING_RETRY = 1   # seconds a caller is told to wait when the worker stops under its poll


class DeviceChanges:
    def __init__(self, versions: DeviceListVersions, waiting: ConcurrencyLimit,
                 stopping: threading.Event | None = None, clock=time.monotonic):
        self._versions, self._waiting, self._clock = versions, waiting, clock
        self._stopping = stopping if stopping is not None else threading.Event()

    def on_get(self, req, resp):
        owner = req.context.principal.username
        since = text_field({"since": req.get_param("since")}, "since", required=False, max_length=64)
        wait = number_param(req, "wait", 0, 0, MAX_WAIT, float)
        version = self._versions.version(owner)
        if since is None or version != since or wait == 0:
            resp.media = {"version": version, "changed": since is not None and version != since, "retry_after": 0}
            return
        key = owner.lower()
        try:
            slot = self._waiting.acquire(key, wait + 1)
        except Busy as busy:
            resp.media = {"version": version, "changed": False,
                          "retry_after": min(busy.retry_after, BUSY_RETRY_MAX)}
            return
        try:
            deadline = self._clock() + wait
            while version == since and self._clock() < deadline and not self._stopping.is_set():
                self._stopping.wait(CHECK_EVERY)  # a stop ends the wait at once
                version = self._versions.version(owner)
        finally:
            self._waiting.release(key, slot)
        cut_short = version == since and self._stopping.is_set()
        resp.media = {"version": version, "changed": version != since,
                      "retry_after": STOPPING_RETRY if cut_short else 0}
