// One device: live presence, controls for every device API, certificate reissue, unregister, emulator.
import { useEffect, useState } from "preact/hooks";
import { del, devicePath, get, post } from "../api.js";
import { forget, remember } from "../credentials.js";
import { useDeviceListVersion } from "../live.js";
import { Link, navigate } from "../router.jsx";
import { Notice, Presence, when } from "../ui.jsx";
import { Controls } from "./controls.jsx";
import { Emulator } from "./emulator.jsx";

const removing = new Set(); // devices this tab is unregistering: their page must not ask for them again

export function DevicePage({ name }) {
  const version = useDeviceListVersion();
  const [device, setDevice] = useState(null);
  const [error, setError] = useState("");
  useEffect(() => {
    if (version === null || removing.has(name)) return undefined; // read after the version it shows
    let live = true;
    get(devicePath(name)).then((d) => live && (setDevice(d), setError("")),
                               (e) => live && setError(e.message));
    return () => { live = false; };
  }, [name, version]);

  if (!device) {
    return <section class="card"><h1>{name}</h1>{error ? <Notice>{error}</Notice> : <p>Loading…</p>}
      <p><Link href="/devices">All devices</Link></p></section>;
  }
  const online = device.connection === "online";
  return (
    <>
      <section class="card">
        <p class="crumbs"><Link href="/devices">All devices</Link></p>
        <div class="heading-row">
          <h1>{device.name}</h1>
          <span aria-live="polite"><Presence connection={device.connection} /></span>
        </div>
        {!online && <p class="notice warning" role="status">This device is offline: calls to it fail at once
          until it connects.</p>}
        <dl class="facts">
          <dt>Device id</dt><dd><code>{device.device_id}</code></dd>
          <dt>Last seen</dt><dd>{when(device.last_seen)}</dd>
          <dt>Registered</dt><dd>{new Date(device.registered_at).toLocaleString()}</dd>
          {device.certificate && <><dt>Certificate</dt>
            <dd>serial <code>{device.certificate.serial.slice(0, 16)}…</code>, valid until {new Date(device.certificate.not_after).toLocaleDateString()}</dd></>}
        </dl>
        <p class="links"><Link href={`/devices/${encodeURIComponent(device.name)}/history`}>History of {device.name}</Link>
          <Link href={`/audit?device=${device.device_id}`}>Audit trail of {device.name}</Link></p>
        <Notice>{error}</Notice>
      </section>
      <section class="card">
        <h2>Controls</h2>
        <Controls name={device.name} />
      </section>
      <Emulator name={device.name} deviceId={device.device_id} />
      <Manage name={device.name} />
    </>
  );
}

function Manage({ name }) {
  const [asking, setAsking] = useState(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const run = async (fn) => {
    setBusy(true);
    setError("");
    try { await fn(); } catch (e) { setError(e.message); setBusy(false); }
  };
  const reissue = () => run(async () => {
    remember(await post(`${devicePath(name)}/certificate`, {}));
    navigate(`/devices/${encodeURIComponent(name)}/credentials`);
  });
  const unregister = () => run(async () => {
    removing.add(name);
    try { await del(devicePath(name)); } catch (e) { removing.delete(name); throw e; }
    forget(name);
    navigate("/devices");
    removing.delete(name);
  });
  return (
    <section class="card">
      <h2>Manage</h2>
      {asking === null && (
        <div class="actions">
          <button type="button" class="secondary" onClick={() => setAsking("reissue")}>Reissue certificate…</button>
          <button type="button" class="danger" onClick={() => setAsking("unregister")}>Unregister…</button>
        </div>
      )}
      {asking === "reissue" && (
        <div class="confirm" role="group" aria-label="Confirm reissue">
          <p>A new certificate and key replace the current ones, which stop working at once.</p>
          <button type="button" disabled={busy} onClick={reissue}>Reissue the certificate of {name}</button>
          <button type="button" class="secondary" onClick={() => setAsking(null)}>Cancel</button>
        </div>
      )}
      {asking === "unregister" && (
        <div class="confirm" role="group" aria-label="Confirm unregister">
          <p>{name} is removed and its certificate stops working at once. This cannot be undone.</p>
          <button type="button" class="danger" disabled={busy} onClick={unregister}>Yes, unregister {name}</button>
          <button type="button" class="secondary" onClick={() => setAsking(null)}>Cancel</button>
        </div>
      )}
      <Notice>{error}</Notice>
    </section>
  );
}
