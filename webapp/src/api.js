// The REST client: bearer tokens with silent refresh, and every error as a readable message.
// The session (tokens) lives in localStorage, so every tab of this origin shares it and a reload keeps
// it; the access token (15 min) is refreshed a minute before it expires and once more on a 401, so the
// user never sees an expiry. Nothing else is stored (device private keys stay in memory), and the app
// runs no inline or third-party script, so a strict CSP guards the stored refresh token.

const KEY = "iotcloud.session";
let session = load();
let refreshTimer = null;
let refreshing = null;
const listeners = new Set();

function load() {
  try { return JSON.parse(localStorage.getItem(KEY)) || null; } catch { return null; }
}

function save(next) {
  session = next;
  if (next) localStorage.setItem(KEY, JSON.stringify(next));
  else localStorage.removeItem(KEY);
  schedule();
  listeners.forEach((fn) => fn(session));
}

export function currentSession() { return session; }
export function onSession(fn) { listeners.add(fn); return () => listeners.delete(fn); }

function schedule() {
  clearTimeout(refreshTimer);
  if (!session) return;
  const due = session.expires_at - Date.now() - 60_000;
  refreshTimer = setTimeout(() => refresh().catch(() => {}), Math.max(1_000, due));
}
schedule();
addEventListener("storage", (event) => { // another tab logged in, out or refreshed
  if (event.key === KEY) { session = load(); schedule(); listeners.forEach((fn) => fn(session)); }
});

function tokensToSession(username, tokens) {
  return { username, access_token: tokens.access_token, refresh_token: tokens.refresh_token,
           expires_at: Date.now() + tokens.expires_in * 1000 };
}

// Friendly words for the problem types people meet; anything else shows the API's own title and detail.
const MESSAGES = {
  "invalid-credentials": "Wrong username or password.",
  "invalid-token": "Your session has ended. Please log in again.",
  "token-expired": "Your session has ended. Please log in again.",
  "account-not-confirmed": "Confirm your account first: enter the code we emailed you.",
  "invalid-code": "That code is wrong, has expired or was used already. Ask for a new one.",
  "already-confirmed": "This account is confirmed already: you can log in.",
  "username-taken": "That username is taken.",
  "email-taken": "That email address is used by another account.",
  "too-many-attempts": "Too many attempts. Please wait a moment and try again.",
  "too-many-waiting-calls": "Too many of your device calls are waiting. Try again in a moment.",
  "too-many-concurrent-requests": "Too many requests at once. Try again in a moment.",
  "device-offline": "The device is offline.",
  "device-timeout": "The device did not answer in time.",
  "device-call-failed": "The device answered with something the platform could not read.",
  "device-not-found": "There is no such device.",
  "device-already-registered": "You already have a device with that name.",
  "invalid-csr": "That certificate signing request cannot be used.",
  "conflict": "Someone else changed this at the same time. Try again.",
  "unavailable": "The platform is busy or restarting. Try again shortly.",
  "signer-unavailable": "Certificates cannot be issued right now. Try again shortly.",
  "emulator-not-running": "The emulator is not running.",
  "too-many-emulators": "Every emulator of this server is in use. Try again later.",
};

export class ApiError extends Error {
  constructor(status, problem) {
    const slug = (problem.type || "").replace(/^\/problems\//, "");
    const friendly = MESSAGES[slug];
    const detail = problem.detail && problem.detail !== problem.title ? problem.detail : "";
    super(friendly || [problem.title, detail].filter(Boolean).join(": ") || `Request failed (${status})`);
    this.status = status;
    this.slug = slug;
    this.problem = problem;
    this.field = problem.field;
  }
}

async function parse(response) {
  const type = response.headers.get("content-type") || "";
  if (response.status === 204) return null;
  if (type.includes("json")) return response.json();
  return response.text();
}

// `priority` is the Fetch Priority hint ("low" for a background long poll, so it never competes with
// what the page needs to show and a page holding one still counts as loaded).
export async function request(method, path, body, { auth = true, retried = false, signal, priority } = {}) {
  const headers = { accept: "application/json, application/problem+json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (auth && session) headers.authorization = `Bearer ${session.access_token}`;
  let response;
  try {
    response = await fetch(path, { method, headers, signal, priority,
                                   body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { title: "The platform cannot be reached. Check your connection." });
  }
  if (response.status === 401 && auth && session && !retried) {
    if (await refresh().then(() => true, () => false)) return request(method, path, body, { auth, retried: true, signal, priority });
  }
  const data = await parse(response);
  if (!response.ok) {
    const problem = data && typeof data === "object" ? data : { title: `Request failed (${response.status})` };
    if (response.status === 401 && auth) save(null);
    throw new ApiError(response.status, problem);
  }
  return data;
}

// Refresh tokens rotate and a reused one revokes the session, so tabs take turns (Web Locks) and a tab
// that finds a newer token stored by another tab adopts it instead of refreshing again.
export function refresh() {
  if (!session) return Promise.reject(new Error("not logged in"));
  if (!refreshing) {
    const stale = session.access_token;
    const run = async () => {
      const stored = load();
      if (stored && stored.access_token !== stale && stored.expires_at - Date.now() > 90_000) {
        save(stored);
        return;
      }
      const { username, refresh_token } = stored || session;
      const tokens = await request("POST", "/v1/auth/refresh", { refresh_token }, { auth: false });
      save(tokensToSession(username, tokens));
    };
    const locked = navigator.locks ? navigator.locks.request("iotcloud-refresh", run) : run();
    refreshing = locked
      .catch((error) => { save(null); throw error; })
      .finally(() => { refreshing = null; });
  }
  return refreshing;
}

export async function login(username, password) {
  const tokens = await request("POST", "/v1/auth/login", { username, password }, { auth: false });
  save(tokensToSession(username, tokens));
}

// The tab forgets the session first, so nothing it still runs (a long poll) calls with a revoked token.
export async function logout() {
  const ending = session;
  save(null);
  if (!ending) return;
  try {
    await fetch("/v1/auth/logout", { method: "POST", headers: { authorization: `Bearer ${ending.access_token}` } });
  } catch { /* offline: the tokens expire by themselves */ }
}

// Every session of the user ends; the API answers once no token of theirs is accepted anywhere, so the
// tab keeps its session until then (a failure leaves the user signed in and told so).
export async function logoutEverywhere() {
  await request("POST", "/v1/auth/logout-everywhere");
  save(null);
}

export const publicPost = (path, body) => request("POST", path, body, { auth: false });
export const get = (path, options) => request("GET", path, undefined, options);
export const post = (path, body) => request("POST", path, body);
export const put = (path, body) => request("PUT", path, body);
export const del = (path) => request("DELETE", path);
export const devicePath = (name) => `/v1/devices/${encodeURIComponent(name)}`;
