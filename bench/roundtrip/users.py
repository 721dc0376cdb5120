"""The benchmark's users and their devices: sign-up, registration, presence.

The API bounds the calls that wait for their devices per user and in all (gateways/http/capacity.py),
so the load is spread over several users, each owning a share of the devices; a call carries its
owner's token.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

from roundtrip import VENV_BIN, say
from roundtrip.httpclient import Http
from roundtrip.procstats import sh
from roundtrip.services import Fleet, Platform


@dataclass
class User:
    username: str
    token: str = ""


def waiting_call_caps(env: dict, workers: int) -> dict:
    """The platform's own waiting-call bounds for the environment it is started with (per worker)."""
    from iotcloud.config import Settings
    per_user, in_all, _ = Settings.from_env(env).api_shares
    return {"per_user": per_user, "in_all_per_worker": in_all, "in_all": in_all * workers}


def plan_concurrency(requested_clients: int | None, requested_users: int, caps: dict) -> tuple[int, int, str]:
    """(clients, users, why) for the saturated run: no more clients than the API lets wait in all,
    and enough users that no one user exceeds its own share."""
    clients = caps["in_all"] if requested_clients is None else requested_clients
    users = max(requested_users, math.ceil(clients / caps["per_user"]))
    why = (f"{clients} clients: the API lets {caps['in_all']} calls wait in all "
           f"({caps['in_all_per_worker']} per worker) and {caps['per_user']} per user, so {users} users "
           f"(at most {math.ceil(clients / users)} waiting calls each)")
    if clients > caps["in_all"]:
        why += "; more clients than the total bound: expect 429 too-many-waiting-calls"
    if users > requested_users:
        why += f"; raised from --users {requested_users}"
    return clients, users, why


async def sign_up(http: Http, platform: Platform, username: str) -> str:
    """Signs one user up (code from the outbox), confirms and logs in; answers the access token."""
    user = {"username": username, "password": "bench horse battery staple", "email": f"{username}@example.com",
            "given_name": "Bench", "family_name": "Mark"}
    await http.json("POST", "/v1/auth/signup", user, token="")
    code = None
    for _ in range(50):
        out = sh(str(VENV_BIN / "iotcloud"), "outbox", "--json", "--to", user["email"],
                 env={**platform.env}, timeout=30)
        match = re.search(r"code is (\d{6})", out)
        if match:
            code = match.group(1)
            break
        await asyncio.sleep(0.2)
    if code is None:
        raise RuntimeError(f"no confirmation code for {username} in the outbox")
    await http.json("POST", "/v1/auth/confirm", {"username": username, "code": code}, token="")
    tokens = await http.json("POST", "/v1/auth/login", {"username": username, "password": user["password"]},
                             token="")
    return tokens["access_token"]


async def sign_up_users(http: Http, platform: Platform, count: int) -> list[User]:
    users = [User(f"bench{i}") for i in range(count)]
    for user in users:
        user.token = await sign_up(http, platform, user.username)
    http.token = users[0].token
    return users


def share_out(names: list[str], users: list[User]) -> dict[str, User]:
    """Device i belongs to user i mod len(users)."""
    return {name: users[i % len(users)] for i, name in enumerate(names)}


async def register(http: Http, owners: dict[str, User], creds_dir: Path, correlation_ids: bool,
                   parallel: int = 4) -> float:
    creds_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    queue = collections.deque(owners)
    done = 0
    last = time.monotonic()

    async def worker():
        nonlocal done, last
        while queue:
            name = queue.popleft()
            body = await http.json("POST", "/v1/devices", {"name": name, "correlation_ids": correlation_ids},
                                   token=owners[name].token)
            path = creds_dir / f"{name}.json"
            path.write_text(json.dumps(body))
            path.chmod(0o600)
            done += 1
            if time.monotonic() - last > 5:
                last = time.monotonic()
                say(f"  registered {done}/{len(owners)} devices ({done / (last - started):.1f}/s)")
    await asyncio.gather(*(worker() for _ in range(parallel)))
    return time.monotonic() - started


async def count_online(http: Http, users: list[User]) -> int:
    online = 0
    for user in users:
        offset = 0
        while True:
            page = await http.json("GET", f"/v1/devices?limit=100&offset={offset}", token=user.token)
            online += sum(1 for d in page["items"] if d["connection"] == "online")
            offset += len(page["items"])
            if not page.get("next"):
                break
    return online


async def connect_fleet(fleet, http: Http, platform: Platform, users: list[User], count: int,
                        connect_timeout: float, online_timeout: float) -> tuple[float, int, float]:
    """Starts the fleet simulator and waits until the users' device lists show its devices online."""
    say(f"starting simulators.fleet with {count} devices")
    connected = fleet.start(count, connect_timeout)
    platform.extra_pids["fleet simulator"] = fleet.pid
    started = time.monotonic()
    online = await count_online(http, users)
    while online < count and time.monotonic() - started < online_timeout:
        await asyncio.sleep(1.0)
        online = await count_online(http, users)
    waited = time.monotonic() - started
    say(f"  {online}/{count} devices show connection: online ({waited:.1f} s)")
    return connected, online, waited


async def small_fleet(http: Http, platform: Platform, state: Path, devices: int, user_count: int) -> tuple[dict, Fleet]:
    """Signs up `user_count` users, registers `devices` devices shared out among them (no correlation
    ids) and connects them from one `simulators.fleet`: (device name -> owner, the running fleet)."""
    users = await sign_up_users(http, platform, user_count)
    owners = share_out([f"bench-{i:04d}" for i in range(devices)], users)
    creds = state / "creds"
    await register(http, owners, creds, False)
    fleet = Fleet(creds, state / "fleet.log")
    try:
        await connect_fleet(fleet, http, platform, users, devices, 120, 60)
    except BaseException:
        fleet.stop()
        raise
    return owners, fleet
