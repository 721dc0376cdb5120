"""Results: the targets check and the table in docs/benchmarks.md."""

from __future__ import annotations

import json

from roundtrip import DOCS, RESULTS, TABLE_BEGIN, TABLE_END


def fmt_num(v, digits=1):
    return "–" if v is None else (f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}")


def render_table() -> str:
    rows = ["| result | date | store | API workers×threads | devices | rate /s | achieved /s | p50 ms | p90 ms | p99 ms | max ms | errors | floor p50/p99 ms | saturated calls/s (K) | floor saturated /s | platform RSS MiB (HWM, 1k devices) | broker RSS MiB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(RESULTS.glob("*.json")):
        try:
            r = json.loads(path.read_text())
        except ValueError:
            continue
        cfg = r.get("config", {})
        floor = {f["target_rate"]: f for f in (r.get("floor") or {}).get("open_loop", [])}
        sat = r.get("saturated") or {}
        fsat = (r.get("floor") or {}).get("saturated") or {}
        mem = (r.get("memory") or {}).get("with_memory_devices") or {}
        tot = mem.get("platform_python_total", {})
        beam = next((v for k, v in mem.get("processes", {}).items() if "beam" in k), {})
        for i, run in enumerate(r.get("open_loop", [])):
            lat = run["latency_from_schedule"]
            fl = floor.get(run["target_rate"], {}).get("latency_from_schedule", {})
            first = i == 0
            rows.append("| " + " | ".join([
                f"`{r['name']}`" if first else "", r.get("date", "")[:10] if first else "",
                cfg.get("store", "") if first else "",
                f"{cfg.get('api_workers')}×{cfg.get('api_threads')}" if first else "",
                str(cfg.get("devices", "")) if first else "",
                fmt_num(run["target_rate"], 0), fmt_num(run["achieved_rate"]),
                fmt_num(lat.get("p50_ms")), fmt_num(lat.get("p90_ms")), fmt_num(lat.get("p99_ms")),
                fmt_num(lat.get("max_ms"), 0), str(run["errors"]),
                f"{fmt_num(fl.get('p50_ms'), 2)} / {fmt_num(fl.get('p99_ms'), 2)}",
                (f"{fmt_num(sat.get('throughput'))} ({sat.get('clients')})" if first and sat else ""),
                fmt_num(fsat.get("throughput")) if first and fsat else "",
                (f"{fmt_num(tot.get('vmrss_mib'))} ({fmt_num(tot.get('vmhwm_mib'))})" if first and tot else ""),
                fmt_num(beam.get("vmrss_mib")) if first and beam else "",
            ]) + " |")
    return "\n".join(rows)


def update_docs() -> None:
    table = render_table()
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n\n" + TABLE_BEGIN + "\n" + TABLE_END + "\n"
    if TABLE_BEGIN not in text:
        text += "\n" + TABLE_BEGIN + "\n" + TABLE_END + "\n"
    head, rest = text.split(TABLE_BEGIN, 1)
    _, tail = rest.split(TABLE_END, 1)
    DOCS.write_text(head + TABLE_BEGIN + "\n" + table + "\n" + TABLE_END + tail)



def targets(result: dict) -> dict:
    out = {}
    at300 = next((r for r in result["open_loop"] if r["target_rate"] == 300), None)
    if at300:
        lat = at300["latency_from_schedule"]
        out["p50_le_5ms_at_300"] = {"value": lat.get("p50_ms"), "met": (lat.get("p50_ms") or 1e9) <= 5}
        out["p99_le_20ms_at_300"] = {"value": lat.get("p99_ms"), "met": (lat.get("p99_ms") or 1e9) <= 20}
    if result.get("saturated"):
        out["saturated_ge_1500"] = {"value": result["saturated"]["throughput"],
                                    "met": result["saturated"]["throughput"] >= 1500}
    mem = result["memory"].get("with_memory_devices")
    if mem:
        v = mem["platform_python_total"]["vmrss_mib"]
        out["platform_rss_le_400mib_1k_devices"] = {"value": v, "met": v <= 400,
                                                    "hwm_sum": mem["platform_python_total"]["vmhwm_mib"],
                                                    "with_broker": mem["platform_with_broker_total"]["vmrss_mib"]}
    return out

