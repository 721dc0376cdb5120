"""API metrics keep a bounded set of series: route templates, not paths; known verbs, the rest as OTHER."""

from __future__ import annotations

import re
import uuid

import falcon
import pytest
from falcon import testing

from gateways.http.metrics import Metrics, RequestMetrics, exposition


class Thing:
    def on_get(self, req, resp, name):
        resp.media = {"name": name}


@pytest.mark.filterwarnings("ignore:Unknown REQUEST_METHOD")
def test_random_paths_and_verbs_add_no_series():
    app = falcon.App(middleware=[RequestMetrics()])
    app.add_route("/things/{name}", Thing())
    app.add_route("/metrics", Metrics(None))
    client = testing.TestClient(app)
    before = exposition(None).decode()
    for _ in range(50):
        assert client.simulate_get(f"/things/{uuid.uuid4().hex}").status_code == 200
        assert client.simulate_get(f"/nothing/{uuid.uuid4().hex}").status_code == 404
        client.simulate_request(f"X{uuid.uuid4().hex[:8].upper()}", "/things/a")
    text = client.simulate_get("/metrics").text
    series = set(re.findall(r'^iotcloud_http_requests_total\{(.*)\} \S+$', text, re.M))
    new = series - set(re.findall(r'^iotcloud_http_requests_total\{(.*)\} \S+$', before, re.M))
    expected = {'method="GET",route="/things/{name}",status="2xx"', 'method="GET",route="unmatched",status="4xx"',
                'method="OTHER",route="/things/{name}",status="4xx"'}
    # The registry is the process's own: an earlier test may have made one of these series already.
    assert new <= expected <= series, (new, series)
    assert not re.search(r"[0-9a-f]{32}", text)
