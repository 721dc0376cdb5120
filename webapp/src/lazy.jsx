// A page whose module is loaded on first use (then kept): `lazyPage(() => import("./x.jsx"), "X")`.
import { useEffect, useState } from "preact/hooks";
import { Notice } from "./ui.jsx";

export function lazyPage(load, name) {
  let loaded = null;
  return function LazyPage(props) {
    const [Page, setPage] = useState(() => loaded);
    const [error, setError] = useState("");
    useEffect(() => {
      if (Page) return;
      load().then((module) => { loaded = module[name]; setPage(() => loaded); },
                  () => setError("This page could not be loaded. Reload to try again."));
    }, []);
    if (error) return <Notice>{error}</Notice>;
    return Page ? <Page {...props} /> : <p class="muted" aria-live="polite">Loading…</p>;
  };
}
