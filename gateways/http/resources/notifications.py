"""/v1 notifications: an app asks a device to notify someone; the owner lists what was sent."""

from __future__ import annotations

from urllib.parse import urlencode

import falcon

from commands.domain.notifications import REQUESTED, Notification
from commands.errors import ValidationFailed
from gateways.broker.topology import TRIGGER_API
from gateways.http.bodies import json_body, number_param
from gateways.http.device_calls import DeviceCalls
from gateways.http.resources.devices import as_user
from queries.notifications import MAX_PAGE, NotificationQueries


class DeviceNotifications:
    """POST /v1/devices/{name}/notifications {recipient, message}: the device echoes the request (as
    libpyiotcloud devices do), then the notifier delivers it. 202 with the notification's id."""

    def __init__(self, calls: DeviceCalls):
        self._calls = calls

    def on_post(self, req, resp, name):
        body = json_body(req)
        timeout = body.get("timeout")
        with as_user(req):
            result = self._calls.call(req.context.principal.username, name, TRIGGER_API,
                                      {"recipient": body.get("recipient"), "message": body.get("message")},
                                      timeout=timeout)
        notification_id = str(Notification.create_id(f"command:{result.command_id}"))
        resp.status = falcon.HTTP_202
        resp.location = f"/v1/notifications/{notification_id}"
        resp.media = {"notification_id": notification_id, "command_id": result.command_id, "state": REQUESTED}


class NotificationList:
    """GET /v1/notifications?device=&state=&channel=&limit=&cursor=: the caller's own, newest first."""

    def __init__(self, queries: NotificationQueries):
        self._queries = queries

    def on_get(self, req, resp):
        filters = {key: req.get_param(key) for key in ("device", "state", "channel", "cursor")}
        for key, value in filters.items():
            if value is not None and len(value) > 200:
                raise ValidationFailed(f"'{key}' is too long", field=key)
        limit = int(number_param(req, "limit", 50, 1, MAX_PAGE, int))
        page, following = self._queries.list(req.context.principal.username, limit=limit, **filters)
        next_url = None
        if following:
            kept = {k: v for k, v in filters.items() if v and k != "cursor"}
            next_url = "/v1/notifications?" + urlencode({"limit": limit, **kept, "cursor": following})
        resp.media = {"notifications": page, "next": next_url}


class NotificationItem:
    def __init__(self, queries: NotificationQueries):
        self._queries = queries

    def on_get(self, req, resp, notification_id):
        doc = self._queries.get(req.context.principal.username, notification_id[:64])
        if doc is None:
            raise falcon.HTTPNotFound(description=f"no notification {notification_id[:64]}")
        resp.media = doc
