// Notifications the caller's devices sent (GET /v1/notifications): filters, states, newest first, more by cursor.
import { useEffect, useState } from "preact/hooks";
import { get } from "../api.js";
import { Notice, when } from "../ui.jsx";

const STATES = ["requested", "sent", "failed", "refused"];
const CHANNELS = ["email", "sms", "device"];

function Select({ id, label, value, options, onChange }) {
  return (
    <div class="field short">
      <label for={id}>{label}</label>
      <select id={id} value={value} onChange={(e) => onChange(e.currentTarget.value)}>
        <option value="">Any</option>
        {options.map((o) => <option key={o} value={o}>{o}</option>)}
      </select>
    </div>
  );
}

export function Notifications({ query }) {
  const [device, setDevice] = useState(query.get("device") || "");
  const [state, setState] = useState("");
  const [channel, setChannel] = useState("");
  const [items, setItems] = useState([]);
  const [next, setNext] = useState(null);
  const [error, setError] = useState("");
  const [loaded, setLoaded] = useState(false);

  const params = () => {
    const p = new URLSearchParams({ limit: "20" });
    if (device.trim()) p.set("device", device.trim());
    if (state) p.set("state", state);
    if (channel) p.set("channel", channel);
    return p;
  };
  useEffect(() => {
    let live = true;
    const timer = setTimeout(() => get(`/v1/notifications?${params()}`).then((page) => {
      if (!live) return;
      setItems(page.notifications); setNext(page.next); setError(""); setLoaded(true);
    }, (e) => live && (setError(e.message), setLoaded(true))), 250);
    return () => { live = false; clearTimeout(timer); };
  }, [device, state, channel]);
  const more = () => get(next).then((page) => { setItems((i) => [...i, ...page.notifications]); setNext(page.next); },
                                    (e) => setError(e.message));
  return (
    <section class="card">
      <h1>Notifications</h1>
      <div class="filters">
        <div class="field short">
          <label for="nf-device">Device name</label>
          <input id="nf-device" value={device} onInput={(e) => setDevice(e.currentTarget.value)} />
        </div>
        <Select id="nf-state" label="State" value={state} options={STATES} onChange={setState} />
        <Select id="nf-channel" label="Channel" value={channel} options={CHANNELS} onChange={setChannel} />
      </div>
      <Notice>{error}</Notice>
      {loaded && items.length === 0 && !error && <p class="muted">No notifications match.</p>}
      <ul class="rows" aria-label="Notifications">
        {items.map((n) => (
          <li key={n.notification_id} class="row">
            <span class={`badge ${n.state}`}>{n.state}</span>
            <span><strong>{n.device_name}</strong> → {n.recipient} <span class="muted">({n.channel})</span></span>
            <span class="muted">{n.message_preview}</span>
            <span class="muted">{when(n.requested_at)}{n.attempts > 1 ? ` · ${n.attempts} attempts` : ""}
              {n.last_error ? ` · ${n.last_error}` : ""}{n.refusal ? ` · ${n.refusal.reason}` : ""}</span>
          </li>
        ))}
      </ul>
      {next && <button type="button" class="secondary" onClick={more}>Show older notifications</button>}
    </section>
  );
}
