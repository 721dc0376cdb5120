"""Fleet load benchmark against the local plain Mosquitto (not collected by pytest).

    .venv/bin/python tests/simulators/bench_fleet.py --devices 1000

Writes N plain credential files, runs ``python -m simulators.fleet`` on them, and reports:
connect time/rate (from the fleet's own summary line), RSS, idle CPU over a few seconds,
and the time for one probe to get a get_status reply from every device.  The persistent
sessions are wiped from the broker afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sim_helpers import MQTT_HOST, MQTT_PORT, PYTHON, REPO, MqttProbe, SimProcess, wipe_sessions  # noqa: E402  (also puts REPO on sys.path)

from simulators.credentials import make_plain_credentials  # noqa: E402


def proc_stat(pid: int) -> tuple[float, float]:
    """(cpu seconds, rss MiB) of a process."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return cpu, rss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--idle-seconds", type=float, default=5.0)
    ap.add_argument("--connect-rate", type=float)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ids = []
        for _ in range(args.devices):
            data = make_plain_credentials(host=MQTT_HOST, mqtt_port=MQTT_PORT)
            ids.append(data["device_id"])
            Path(tmp, f"{data['device_id']}.json").write_text(json.dumps(data))
        argv = [PYTHON, "-m", "simulators.fleet", "-d", tmp, "--progress-interval", "5"]
        if args.connect_rate:
            argv += ["--connect-rate", str(args.connect_rate)]
        sim = SimProcess(argv, cwd=REPO)
        try:
            m = sim.wait_for(r"all (\d+) devices connected and subscribed in ([\d.]+) s \(([\d.]+) devices/s\)",
                             timeout=max(60, args.devices / 20))
            cpu0, rss = proc_stat(sim.proc.pid)
            t0 = time.monotonic()
            probe = MqttProbe(MQTT_HOST, MQTT_PORT)
            probe.watch("server/+/get_status")
            # Measure idle CPU while nothing is sent.
            time.sleep(args.idle_seconds)
            cpu1, rss = proc_stat(sim.proc.pid)
            idle_cpu = (cpu1 - cpu0) / (time.monotonic() - t0) * 100
            # Windows of 500 requests: Mosquitto queues at most 1000 messages (max_queued_messages) per subscriber.
            t_req = time.monotonic()
            for i in range(0, len(ids), 500):
                batch = ids[i:i + 500]
                wanted = {f"server/{d}/get_status" for d in batch}
                for d in batch:
                    probe.client.publish(f"{d}/get_status", b"{}", qos=1)
                got = set()
                while got != wanted:
                    topic, _ = probe.expect(timeout=30)
                    if topic in wanted:
                        got.add(topic)
            rtt_all = time.monotonic() - t_req
            cpu2, rss_after = proc_stat(sim.proc.pid)
            probe.close()
            print(f"devices={m.group(1)} connect_time={m.group(2)}s connect_rate={m.group(3)}/s "
                  f"rss={rss:.1f}MiB idle_cpu={idle_cpu:.1f}% "
                  f"get_status_to_all={rtt_all:.2f}s ({len(ids) / rtt_all:.0f} replies/s) rss_after={rss_after:.1f}MiB")
            t_stop = time.monotonic()
            rc = sim.stop(signal.SIGTERM, timeout=60)
            print(f"stop: rc={rc} in {time.monotonic() - t_stop:.2f}s; {sim.lines[-1]}")
        finally:
            sim.kill()
            wipe_sessions(MQTT_HOST, MQTT_PORT, ids)
    return 0


if __name__ == "__main__":
    sys.exit(main())
