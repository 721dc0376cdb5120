// Administration (the `admin` role): every account with its roles (grant and revoke, effective on the
// user's next request) and every device. The API refuses anyone else; the navigation only hides the page.
import { useEffect, useState } from "preact/hooks";
import { del, get, put } from "../api.js";
import { Notice, Presence, when } from "../ui.jsx";

const ROLES = ["auditor", "analyst", "admin"];
const rolePath = (username, role) => `/v1/admin/users/${encodeURIComponent(username)}/roles/${role}`;

// Every page of a cursor-paged admin list (bounded: at most `pages` requests).
async function all(path, pages = 20) {
  let items = [], after = null;
  for (let i = 0; i < pages; i++) {
    const page = await get(`${path}?limit=200${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    items = items.concat(page.items);
    if (!page.next) break;
    after = page.next;
  }
  return items;
}

function RoleButton({ user, role, me, onChanged }) {
  const held = user.roles.includes(role);
  const [busy, setBusy] = useState(false);
  const own = held && role === "admin" && user.username === me;
  const change = async () => {
    setBusy(true);
    try { await (held ? del : put)(rolePath(user.username, role)); await onChanged(`${role} ${held ? "revoked from" : "granted to"} ${user.username}`); }
    catch (e) { await onChanged("", e.message); }
    finally { setBusy(false); }
  };
  const label = `${held ? "Revoke" : "Grant"} ${role} ${held ? "from" : "to"} ${user.username}`;
  return (
    <button type="button" class={held ? "secondary small" : "small"} aria-label={label} disabled={busy || own}
            title={own ? "Another administrator has to revoke your admin role" : undefined} onClick={change}>
      {held ? `Revoke ${role}` : `Grant ${role}`}
    </button>
  );
}

function Users({ me }) {
  const [users, setUsers] = useState(null);
  const [status, setStatus] = useState("");
  const [error, setError] = useState("");
  const load = () => all("/v1/admin/users").then(setUsers, (e) => setError(e.message));
  useEffect(() => { load(); }, []);
  const changed = async (message, failure = "") => { setStatus(message); setError(failure); await load(); };
  return (
    <>
      <h2>Users</h2>
      <Notice>{error}</Notice>
      <p role="status" class="muted">{status}</p>
      {users && (
        <div class="table-scroll" tabIndex="0" role="region" aria-label="Users (scrolls sideways)">
          <table>
            <caption>{users.length} {users.length === 1 ? "account" : "accounts"}</caption>
            <thead><tr><th scope="col">Username</th><th scope="col">Email</th><th scope="col">Status</th>
              <th scope="col">Roles</th><th scope="col">Change roles</th></tr></thead>
            <tbody>{users.map((user) => (
              <tr key={user.username}>
                <td>{user.username}</td><td>{user.email}</td><td>{user.status}</td>
                <td>{user.roles.length ? user.roles.join(", ") : "–"}</td>
                <td><div class="actions">{ROLES.map((role) => (
                  <RoleButton key={role} user={user} role={role} me={me} onChanged={changed} />))}</div></td>
              </tr>))}</tbody>
          </table>
        </div>
      )}
    </>
  );
}

function AllDevices() {
  const [devices, setDevices] = useState(null);
  const [error, setError] = useState("");
  useEffect(() => { all("/v1/admin/devices").then(setDevices, (e) => setError(e.message)); }, []);
  return (
    <>
      <h2>All devices</h2>
      <Notice>{error}</Notice>
      {devices && (
        <div class="table-scroll" tabIndex="0" role="region" aria-label="All devices (scrolls sideways)">
          <table>
            <caption>{devices.length} {devices.length === 1 ? "device" : "devices"}</caption>
            <thead><tr><th scope="col">Owner</th><th scope="col">Name</th><th scope="col">Presence</th>
              <th scope="col">Last seen</th><th scope="col">Device id</th></tr></thead>
            <tbody>{devices.map((d) => (
              <tr key={d.device_id}>
                <td>{d.owner}</td><td>{d.name}</td>
                <td><Presence connection={d.online ? "online" : "offline"} /></td>
                <td>{when(d.last_seen)}</td><td><code>{d.device_id}</code></td>
              </tr>))}</tbody>
          </table>
        </div>
      )}
    </>
  );
}

export function Admin({ me }) {
  return (
    <section class="card">
      <h1>Administration</h1>
      <p class="muted">A role granted or revoked here holds from the user's next request.</p>
      <Users me={me} />
      <AllDevices />
    </section>
  );
}
