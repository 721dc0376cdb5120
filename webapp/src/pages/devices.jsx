// The device list: live presence, search, paging, registration.
import { useEffect, useState } from "preact/hooks";
import { get, post } from "../api.js";
import { remember } from "../credentials.js";
import { useDeviceListVersion } from "../live.js";
import { Link, navigate } from "../router.jsx";
import { Field, Form, Notice, Presence, when } from "../ui.jsx";

const PAGE = 20;
const SEARCH_CAP = 2000; // a search loads the whole list (pages of 100) up to this many devices

async function fetchAll() {
  const items = [];
  let next = "/v1/devices?limit=100&offset=0";
  while (next && items.length < SEARCH_CAP) {
    const page = await get(next);
    items.push(...page.items);
    next = page.next;
  }
  return items;
}

export function Devices() {
  const version = useDeviceListVersion();
  const [page, setPage] = useState(0);
  const [search, setSearch] = useState("");
  const [state, setState] = useState({ items: [], total: 0, loaded: false, error: "" });
  const [, tick] = useState(0);

  useEffect(() => { // "last seen 2 min ago" keeps counting
    const timer = setInterval(() => tick((n) => n + 1), 15_000);
    return () => clearInterval(timer);
  }, []);

  useEffect(() => {
    // The list is read after the version it shows is known (one request, at once), so no change made
    // between the two is missed, and the list is not read twice on arrival.
    if (version === null) return undefined;
    let live = true;
    const term = search.trim().toLowerCase();
    const load = term
      ? fetchAll().then((all) => {
        const found = all.filter((d) => d.name.toLowerCase().includes(term) || d.device_id.startsWith(term));
        return { items: found.slice(page * PAGE, page * PAGE + PAGE), total: found.length };
      })
      : get(`/v1/devices?limit=${PAGE}&offset=${page * PAGE}`);
    load.then((found) => live && setState({ items: found.items, total: found.total, loaded: true, error: "" }),
              (error) => live && setState((s) => ({ ...s, loaded: true, error: error.message })));
    return () => { live = false; };
  }, [version, page, search]);

  const pages = Math.max(1, Math.ceil(state.total / PAGE));
  useEffect(() => { if (page >= pages) setPage(pages - 1); }, [pages]);
  return (
    <>
      <section class="card">
        <div class="heading-row">
          <h1>Your devices</h1>
          <span class="muted" aria-live="polite">{state.loaded ? `${state.total} in all` : "Loading…"}</span>
        </div>
        <div class="field search">
          <label for="device-search">Search by name or device id</label>
          <input id="device-search" type="search" value={search}
                 onInput={(e) => { setSearch(e.currentTarget.value); setPage(0); }} />
        </div>
        <Notice>{state.error}</Notice>
        {state.loaded && state.items.length === 0 && !state.error &&
          <p class="muted">{search ? "No device matches." : "No devices yet: register your first one below."}</p>}
        <ul class="devices" aria-label="Devices">
          {state.items.map((device) => (
            <li key={device.device_id} class="device-row" data-device={device.name}>
              <Link href={`/devices/${encodeURIComponent(device.name)}`} class="device-name">{device.name}</Link>
              <Presence connection={device.connection} />
              <span class="muted last-seen">Last seen {when(device.last_seen)}</span>
            </li>
          ))}
        </ul>
        {pages > 1 && (
          <nav class="pager" aria-label="Pages">
            <button type="button" class="secondary" disabled={page === 0} onClick={() => setPage(page - 1)}>Previous page</button>
            <span aria-live="polite">Page {page + 1} of {pages}</span>
            <button type="button" class="secondary" disabled={page >= pages - 1} onClick={() => setPage(page + 1)}>Next page</button>
          </nav>
        )}
      </section>
      <Register />
    </>
  );
}

function Register() {
  return (
    <section class="card">
      <h2>Register a device</h2>
      <p class="muted">The platform issues the device a certificate and a private key. You will see the key once.</p>
      <Form class="inline" submit="Register" action={async (data) => {
        const credentials = await post("/v1/devices", { name: String(data.get("name")).trim() });
        remember(credentials);
        navigate(`/devices/${encodeURIComponent(credentials.name)}/credentials`);
      }}>
        <Field label="Device name" name="name" required maxlength="64" autocomplete="off" />
      </Form>
    </section>
  );
}
