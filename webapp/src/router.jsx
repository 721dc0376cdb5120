// History-API routing under /app (the server answers index.html for any /app/... path).
import { useEffect, useState } from "preact/hooks";

export const BASE = "/app";
const listeners = new Set();

export function currentPath() {
  const path = location.pathname;
  return path.startsWith(BASE) ? path.slice(BASE.length) || "/" : "/";
}

export function navigate(path, { replace = false } = {}) {
  const url = BASE + path;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  listeners.forEach((fn) => fn());
  window.scrollTo(0, 0);
}

addEventListener("popstate", () => listeners.forEach((fn) => fn()));

export function useRoute() {
  const [where, setWhere] = useState({ path: currentPath(), search: location.search });
  useEffect(() => { // a change of the query alone (same page) re-renders too
    const update = () => setWhere({ path: currentPath(), search: location.search });
    listeners.add(update);
    return () => listeners.delete(update);
  }, []);
  return { path: where.path, query: new URLSearchParams(where.search) };
}

// A same-origin link that routes without a reload (ctrl/middle clicks keep the browser's behaviour).
export function Link({ href, children, ...rest }) {
  const onClick = (event) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    navigate(href);
  };
  return <a href={BASE + href} onClick={onClick} {...rest}>{children}</a>;
}

// "/devices/:name" against "/devices/kitchen" -> { name: "kitchen" }
export function match(pattern, path) {
  const want = pattern.split("/"), got = path.split("/");
  if (want.length !== got.length) return null;
  const params = {};
  for (let i = 0; i < want.length; i++) {
    if (want[i].startsWith(":")) params[want[i].slice(1)] = decodeURIComponent(got[i]);
    else if (want[i] !== got[i]) return null;
  }
  return params;
}
