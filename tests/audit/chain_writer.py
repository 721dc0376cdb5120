"""A separate writer process for the chain tests: records calls from several threads through the
group commit, against the event store described by the JSON environment in argv[1]."""

from __future__ import annotations

import json
import sys
import threading

from commands.context import acting_as
from commands.device_control import DeviceControl


def main(env: dict, calls: int, threads: int, tag: str) -> None:
    control = DeviceControl(env=env)
    device = {"device_id": tag.ljust(40, "0"), "owner": "alice", "name": tag}
    errors = []
    print("ready", flush=True)
    sys.stdin.readline()  # both writers start together

    def work(worker: int) -> None:
        try:
            with acting_as(f"service:{tag}"):  # marks this process's events in the log
                for n in range(calls // threads):
                    command = control.dispatch(device, "get_gpio", {"number": worker}, None, None, by=tag)
                    command.record_answer(n, {"value": n})
                    control.record_later(command).result(30)
        except Exception as error:  # noqa: BLE001 - reported to the test through the exit code
            errors.append(error)

    workers = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    control.close()
    if errors:
        raise SystemExit(f"{len(errors)} writers failed: {errors[0]!r}")


if __name__ == "__main__":
    main(json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
