// Live device list: a bounded long poll (GET /v1/devices/_changes, see gateways/http/resources/live.py).
// Each open page holds at most one poll; the server answers at once when the caller's devices change
// (registration, online/offline, certificate, removal) and after 20 s otherwise.
import { useEffect, useState } from "preact/hooks";
import { get } from "./api.js";

const WAIT = 20;

export function useDeviceListVersion() {
  const [version, setVersion] = useState(null);
  useEffect(() => {
    const abort = new AbortController();
    let stopped = false;
    let since = null;
    const pause = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    (async () => {
      while (!stopped) {
        try {
          const query = since === null ? "" : `?since=${encodeURIComponent(since)}&wait=${WAIT}`;
          // The waiting poll is fetched at low priority: at the default (high) priority a browser, and
          // Lighthouse, would count the page as still loading for as long as it is open.
          const answer = await get(`/v1/devices/_changes${query}`,
                                   { signal: abort.signal, priority: since === null ? "auto" : "low" });
          if (answer.version !== since) { since = answer.version; setVersion(since); }
          if (answer.retry_after) await pause(answer.retry_after);
        } catch (error) {
          if (stopped || error.name === "AbortError") return;
          await pause(3);
        }
      }
    })();
    return () => { stopped = true; abort.abort(); };
  }, []);
  return version;
}
