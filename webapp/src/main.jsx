import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { currentSession, logout, onSession } from "./api.js";
import { Link, match, navigate, useRoute } from "./router.jsx";
import { Confirm, Forgot, Login, Reset, SignUp } from "./pages/auth.jsx";
import { Devices } from "./pages/devices.jsx";
import { get } from "./api.js";
import { lazyPage } from "./lazy.jsx";
import "./styles.css";

// Pages other than the device list and the sign-in forms load on first use: the first page runs less script.
const Account = lazyPage(() => import("./pages/account.jsx"), "Account");
const Credentials = lazyPage(() => import("./pages/credentials.jsx"), "Credentials");
const Notifications = lazyPage(() => import("./pages/notifications.jsx"), "Notifications");
const Analytics = lazyPage(() => import("./pages/analytics.jsx"), "Analytics");
const History = lazyPage(() => import("./pages/history.jsx"), "History");
const Audit = lazyPage(() => import("./pages/audit.jsx"), "Audit");
const Admin = lazyPage(() => import("./pages/admin.jsx"), "Admin");
const DevicePage = lazyPage(() => import("./pages/device.jsx"), "DevicePage");

const PUBLIC = { "/login": ["Log in", Login], "/signup": ["Sign up", SignUp], "/confirm": ["Confirm your account", Confirm],
                 "/forgot": ["Forgot password", Forgot], "/reset": ["Reset password", Reset] };

function page(path, query, roles, username) {
  if (PUBLIC[path]) { const [title, Page] = PUBLIC[path]; return [title, <Page query={query} />]; }
  if (path === "/" || path === "/devices") return ["Devices", <Devices />];
  if (path === "/account") return ["Account", <Account />];
  if (path === "/history") return ["History", <History key="all" />];
  if (path === "/audit") return ["Audit", <Audit query={query} roles={roles} key={query.toString()} />];
  if (path === "/admin") return ["Administration", <Admin me={username} />];
  if (path === "/analytics") return ["Analytics", <Analytics roles={roles} />];
  if (path === "/notifications") return ["Notifications", <Notifications query={query} key={query.toString()} />];
  let params = match("/devices/:name/history", path);
  if (params) return [`History of ${params.name}`, <History name={params.name} key={params.name} />];
  params = match("/devices/:name/credentials", path);
  if (params) return ["Credentials", <Credentials name={params.name} />];
  params = match("/devices/:name", path);
  if (params) return [params.name, <DevicePage name={params.name} key={params.name} />];
  return ["Not found", <section class="card"><h1>Page not found</h1><p><Link href="/devices">Go to your devices</Link></p></section>];
}

function App() {
  const { path, query } = useRoute();
  const [session, setSession] = useState(currentSession());
  useEffect(() => onSession(setSession), []);
  const isPublic = Boolean(PUBLIC[path]);
  useEffect(() => {
    if (!session && !isPublic) navigate("/login", { replace: true });
    else if (session && (path === "/login" || path === "/")) navigate("/devices", { replace: true });
  }, [session, path]);
  const [roles, setRoles] = useState([]);
  useEffect(() => { // roles shape the navigation only; the API decides what each role may see
    if (session) get("/v1/me").then((me) => setRoles(me.roles || []), () => setRoles([]));
  }, [session?.username]);
  const [title, content] = !session && !isPublic ? ["Log in", null] : page(path, query, roles, session?.username);
  useEffect(() => { document.title = `${title} · iotcloud`; }, [title]);
  const current = (href) => (path.startsWith(href) ? "page" : undefined);
  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <Link href={session ? "/devices" : "/login"} class="brand" aria-label="iotcloud home">
          <svg viewBox="0 0 24 24" width="24" height="24" aria-hidden="true" focusable="false">
            <path d="M6 18a4 4 0 0 1-.5-7.97A6 6 0 0 1 17.3 8.5 4.75 4.75 0 0 1 18 18Z" fill="currentColor" />
          </svg>
          <span>iotcloud</span>
        </Link>
        {session && (
          <nav aria-label="Main">
            <Link href="/devices" aria-current={current("/devices")}>Devices</Link>
            <Link href="/history" aria-current={current("/history")}>History</Link>
            <Link href="/notifications" aria-current={current("/notifications")}>Notifications</Link>
            <Link href="/analytics" aria-current={current("/analytics")}>Analytics</Link>
            {roles.includes("auditor") && <Link href="/audit" aria-current={current("/audit")}>Audit</Link>}
            {roles.includes("admin") && <Link href="/admin" aria-current={current("/admin")}>Admin</Link>}
            <Link href="/account" aria-current={current("/account")}>Account</Link>
            <button type="button" class="link" onClick={() => logout().finally(() => navigate("/login", { replace: true }))}>
              Log out
            </button>
          </nav>
        )}
      </header>
      <main id="main" tabIndex="-1">{content}</main>
    </>
  );
}

render(<App />, document.getElementById("app"));
