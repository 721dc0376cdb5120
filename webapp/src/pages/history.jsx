// Device history (h/history: GET /v1/history, /v1/devices/{name}/history): filters, a latency chart,
// newest first, older pages by cursor.
import { useEffect, useState } from "preact/hooks";
import { devicePath, get } from "../api.js";
import { Chart } from "../chart.jsx";
import { Link } from "../router.jsx";
import { Notice } from "../ui.jsx";

const APIS = ["get_status", "set_status", "get_gpio", "set_gpio", "get_rtc", "set_rtc", "get_mac", "get_ip",
              "get_subnet", "get_gateway", "write_uart", "trigger_notification"];
const STATES = ["succeeded", "failed", "timed_out", "expired", "queued", "sent"];

export function Choice({ id, label, value, options, onChange }) {
  return (
    <div class="field short">
      <label for={id}>{label}</label>
      <select id={id} value={value} onChange={(e) => onChange(e.currentTarget.value)}>
        <option value="">Any</option>
        {options.map((o) => <option key={o} value={o}>{o.replace(/_/g, " ")}</option>)}
      </select>
    </div>
  );
}

const shown = (payload) => (typeof payload === "string" ? payload : JSON.stringify(payload));

const describe = (item) => {
  if (item.event !== "command") return item.event.replace(/_/g, " ");
  return item.api;
};

export function History({ name }) {
  const [filters, setFilters] = useState({ api: "", state: "", direction: "", from: "", to: "" });
  const [items, setItems] = useState([]);
  const [next, setNext] = useState(null);
  const [error, setError] = useState("");
  const [loaded, setLoaded] = useState(false);
  const set = (key) => (value) => setFilters((f) => ({ ...f, [key]: value }));
  const base = name ? `${devicePath(name)}/history` : "/v1/history";

  useEffect(() => {
    let live = true;
    const params = new URLSearchParams({ limit: "50" });
    for (const [key, value] of Object.entries(filters)) {
      if (value) params.set(key, key === "from" || key === "to" ? new Date(value).toISOString() : value);
    }
    get(`${base}?${params}`).then((page) => {
      if (!live) return;
      setItems(page.items); setNext(page.next); setError(""); setLoaded(true);
    }, (e) => live && (setError(e.message), setLoaded(true)));
    return () => { live = false; };
  }, [base, JSON.stringify(filters)]);
  const more = () => get(`${base}?next=${encodeURIComponent(next)}`)
    .then((page) => { setItems((i) => [...i, ...page.items]); setNext(page.next); }, (e) => setError(e.message));

  const timed = items.filter((i) => typeof i.latency_ms === "number").reverse();
  return (
    <section class="card">
      {name && <p class="crumbs"><Link href={`/devices/${encodeURIComponent(name)}`}>Back to {name}</Link></p>}
      <h1>{name ? `History of ${name}` : "History"}</h1>
      <div class="filters">
        <Choice id="h-api" label="Device API" value={filters.api} options={APIS} onChange={set("api")} />
        <Choice id="h-state" label="State" value={filters.state} options={STATES} onChange={set("state")} />
        <Choice id="h-direction" label="Direction" value={filters.direction} options={["to_device", "from_device"]}
                onChange={set("direction")} />
        <div class="field short">
          <label for="h-from">From</label>
          <input id="h-from" type="datetime-local" value={filters.from} onInput={(e) => set("from")(e.currentTarget.value)} />
        </div>
        <div class="field short">
          <label for="h-to">To</label>
          <input id="h-to" type="datetime-local" value={filters.to} onInput={(e) => set("to")(e.currentTarget.value)} />
        </div>
      </div>
      <Notice>{error}</Notice>
      {timed.length > 1 && (
        <Chart title="Latency of answered calls (ms), oldest to newest"
               series={[{ label: "latency ms", stroke: "#0b5cad", points: true }]}
               data={[timed.map((i) => new Date(i.at).getTime() / 1000), timed.map((i) => i.latency_ms)]} />
      )}
      {loaded && items.length === 0 && !error && <p class="muted">Nothing in the history matches.</p>}
      <ul class="rows" aria-label="History entries">
        {items.map((item) => (
          <li key={item.id} class="row history-row">
            <span class={`badge ${item.state || ""}`}>{item.state || item.direction?.replace(/_/g, " ")}</span>
            <span><strong>{describe(item)}</strong>{!name && <> · {item.device_name}</>}
              {typeof item.latency_ms === "number" && <span class="muted"> · {Math.round(item.latency_ms)} ms</span>}</span>
            <span class="muted">{new Date(item.at).toLocaleString()}{item.actor ? ` · ${item.actor}` : ""}</span>
            {(item.request_payload || item.answer_payload || item.error) && (
              <code class="payload">{[item.request_payload && `→ ${shown(item.request_payload)}`,
                item.answer_payload && `← ${shown(item.answer_payload)}`, item.error].filter(Boolean).join("  ")}</code>
            )}
          </li>
        ))}
      </ul>
      {next && <button type="button" class="secondary" onClick={more}>Show older entries</button>}
    </section>
  );
}
