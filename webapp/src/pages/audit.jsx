// Audit (h/audit: /v1/audit/...): a device's event timeline with actors and correlation ids, the device
// as it was at a chosen time, and (auditors) the event chain's verification. Owners audit their own
// devices; auditors any device, by id.
import { useEffect, useState } from "preact/hooks";
import { get } from "../api.js";
import { Form, Field, Notice } from "../ui.jsx";
import { navigate } from "../router.jsx";

const auditPath = (id) => `/v1/audit/devices/${encodeURIComponent(id)}`;

function Timeline({ deviceId }) {
  const [events, setEvents] = useState(null);
  const [error, setError] = useState("");
  useEffect(() => { get(`${auditPath(deviceId)}/events`).then((r) => setEvents(r.events), (e) => setError(e.message)); },
            [deviceId]);
  return (
    <>
      <h2>Event timeline</h2>
      <Notice>{error}</Notice>
      {events && (
        <div class="table-scroll" tabIndex="0" role="region" aria-label="Event timeline (scrolls sideways)">
          <table>
            <caption>{events.length} events, oldest first</caption>
            <thead><tr><th scope="col">Time</th><th scope="col">Event</th><th scope="col">Revision</th>
              <th scope="col">Actor</th><th scope="col">Correlation id</th></tr></thead>
            <tbody>{events.map((e) => (
              <tr key={`${e.log}-${e.position}`}>
                <td>{new Date(e.timestamp).toLocaleString()}</td>
                <td>{e.event}{e.api ? ` (${e.api})` : ""}</td><td>{e.revision}</td>
                <td>{e.actor || "–"}</td><td><code>{e.correlation_id || "–"}</code></td>
              </tr>))}</tbody>
          </table>
        </div>
      )}
    </>
  );
}

function StateAt({ deviceId }) {
  const [state, setState] = useState(null);
  return (
    <>
      <h2>The device at a chosen time</h2>
      <Form class="inline" submit="Show the device then" action={async (data) => {
        const at = String(data.get("at"));
        setState(await get(`${auditPath(deviceId)}/state${at ? `?at=${encodeURIComponent(new Date(at).toISOString())}` : ""}`));
      }}>
        <Field label="Time (empty: now)" name="at" type="datetime-local" />
      </Form>
      {state && (
        <dl class="facts" aria-label="Device state">
          <dt>Revision</dt><dd>{state.revision} (as of {new Date(state.as_of).toLocaleString()})</dd>
          <dt>Name</dt><dd>{state.name}</dd><dt>Owner</dt><dd>{state.owner}</dd>
          <dt>Registered</dt><dd>{state.registered ? "yes" : "no"}</dd>
          <dt>Online</dt><dd>{state.online ? "yes" : "no"}</dd>
          <dt>Certificate serial</dt><dd><code>{state.certificate?.serial || "–"}</code></dd>
        </dl>
      )}
    </>
  );
}

function Verify() {
  const [result, setResult] = useState(null);
  return (
    <>
      <h2>Verify the event store</h2>
      <p class="muted">Walks every event log against its hash chain and the newest signed checkpoint.</p>
      <Form submit="Verify now" action={async () => setResult(await get("/v1/audit/verify"))}>{null}</Form>
      {result && (
        <div role="status">
          <p class={`notice ${result.intact ? "info" : "error"}`}>{result.intact ? "Intact: no event was altered, removed, inserted or reordered."
            : "Broken: see the logs below."}</p>
          <ul class="rows">{result.logs.map((log) => (
            <li key={log.log || log.name} class="row"><span><strong>{log.log || log.name}</strong> · {log.events ?? log.checked ?? ""} events</span>
              {log.broken && <span class="error-text">{log.broken.message}</span>}</li>))}</ul>
        </div>
      )}
    </>
  );
}

export function Audit({ query, roles }) {
  const deviceId = query.get("device") || "";
  const auditor = roles.includes("auditor");
  return (
    <section class="card">
      <h1>Audit</h1>
      <Form class="inline" submit="Audit this device" action={async (data) => {
        navigate(`/audit?device=${encodeURIComponent(String(data.get("device")).trim())}`);
      }}>
        <Field label="Device id (40 hex characters)" name="device" required defaultValue={deviceId} key={deviceId}
               pattern="[0-9a-f]{40}" autocomplete="off" />
      </Form>
      {deviceId && <Timeline deviceId={deviceId} key={`t-${deviceId}`} />}
      {deviceId && <StateAt deviceId={deviceId} key={`s-${deviceId}`} />}
      {auditor && <Verify />}
    </section>
  );
}
