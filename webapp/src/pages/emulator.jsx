// The device emulator (gateways/http/emulators.py): the server runs the project's MQTT simulator with
// this device's certificate and key, for a few minutes, so the device comes online without hardware.
import { useEffect, useState } from "preact/hooks";
import { del, get, post } from "../api.js";
import { recall, remember } from "../credentials.js";
import { Notice } from "../ui.jsx";

export function Emulator({ name, deviceId }) {
  const [status, setStatus] = useState(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const [minutes, setMinutes] = useState("10");
  const [credentials, setCredentials] = useState(() => recall(name));
  const mine = status && status.device === name;

  const refresh = () => get("/v1/emulator").then((s) => setStatus(s.device ? s : null), (e) => setError(e.message));
  useEffect(() => { refresh(); }, [name]);
  useEffect(() => {
    if (!mine || !status.running) return undefined;
    const timer = setInterval(refresh, 2000);
    return () => clearInterval(timer);
  }, [mine, status?.running]);

  const load = async (event) => {
    setError("");
    const file = event.currentTarget.files[0];
    if (!file) return;
    try {
      const loaded = JSON.parse(await file.text());
      if (loaded.device_id !== deviceId || !loaded.certificate || !loaded.private_key) {
        throw new Error("This file does not hold this device's certificate and private key.");
      }
      remember({ ...loaded, name });
      setCredentials(loaded);
    } catch (e) { setError(e.message); }
  };
  const act = (fn) => async () => {
    setBusy(true);
    setError("");
    try { await fn(); await refresh(); } catch (e) { setError(e.message); } finally { setBusy(false); }
  };
  const start = act(() => post("/v1/emulator", { name, certificate: credentials.certificate,
                                                 private_key: credentials.private_key, minutes: Number(minutes) }));
  const stop = act(() => del("/v1/emulator"));

  return (
    <section class="card" aria-labelledby="emulator-title">
      <h2 id="emulator-title">Emulator</h2>
      <p class="muted">Try the platform without hardware: the server runs a simulated {name} with its own
        certificate for a few minutes (one emulator per account).</p>
      {mine && status.running
        ? <p class="notice info" role="status">Running until {new Date(status.stops_at).toLocaleTimeString()}.</p>
        : status && status.running && <p class="muted">Your emulator is running {status.device}; starting here stops it.</p>}
      {!credentials && (
        <div class="field">
          <label for="emulator-file">Credentials file of {name} (the JSON you downloaded)</label>
          <input id="emulator-file" type="file" accept="application/json,.json" onChange={load} />
        </div>
      )}
      {credentials && !(mine && status.running) && (
        <div class="field short">
          <label for="emulator-minutes">Minutes to run (1–30)</label>
          <input id="emulator-minutes" type="number" min="1" max="30" value={minutes}
                 onInput={(e) => setMinutes(e.currentTarget.value)} />
        </div>
      )}
      <div class="actions">
        {!(mine && status.running) &&
          <button type="button" disabled={busy || !credentials} onClick={start}>Start the emulator</button>}
        {mine && status.running && <button type="button" class="secondary" disabled={busy} onClick={stop}>Stop the emulator</button>}
      </div>
      <Notice>{error}</Notice>
      {mine && status.display.length > 0 && (
        <>
          <h3>Device display</h3>
          <pre class="display" aria-live="polite" aria-label="Device display">{status.display.join("\n")}</pre>
        </>
      )}
    </section>
  );
}
