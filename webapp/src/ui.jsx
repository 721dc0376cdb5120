// Small shared pieces: labelled fields, forms that show their error, call states, time formatting.
import { useState } from "preact/hooks";

let ids = 0;
export const newId = (prefix) => `${prefix}-${++ids}`;

export function Field({ label, hint, error, id, ...input }) {
  const [own] = useState(() => id || newId("f"));
  const hintId = hint ? `${own}-hint` : undefined;
  return (
    <div class="field">
      <label for={own}>{label}</label>
      <input id={own} aria-describedby={hintId} aria-invalid={error ? "true" : undefined} {...input} />
      {hint && <small id={hintId}>{hint}</small>}
    </div>
  );
}

export function Notice({ kind = "error", children }) {
  if (!children) return null;
  return <p class={`notice ${kind}`} role={kind === "error" ? "alert" : "status"}>{children}</p>;
}

// A form whose submit runs `action` (async); shows a busy button and the error message.
export function Form({ action, submit, children, class: cls }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const onSubmit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError("");
    try { await action(new FormData(event.currentTarget)); }
    catch (err) { setError(err.message || String(err)); }
    finally { setBusy(false); }
  };
  return (
    <form class={cls} onSubmit={onSubmit} aria-busy={busy ? "true" : "false"}>
      {children}
      <Notice>{error}</Notice>
      <button type="submit" disabled={busy}>{busy ? "Please wait…" : submit}</button>
    </form>
  );
}

export function when(iso) {
  if (!iso) return "never";
  const date = new Date(iso);
  const seconds = Math.round((Date.now() - date) / 1000);
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return date.toLocaleString();
}

export function Presence({ connection }) {
  const online = connection === "online";
  return <span class={`presence ${online ? "online" : "offline"}`}>{online ? "Online" : "Offline"}</span>;
}

// What became of one device call: state, latency, value or error.
export function CallState({ call }) {
  if (!call) return <p class="call idle" aria-live="polite">Not called yet</p>;
  const label = { sending: "Sending…", queued: "Queued", sent: "Sent", succeeded: "Succeeded", failed: "Failed",
                  timed_out: "Timed out", offline: "Device offline", expired: "Expired" }[call.state] || call.state;
  return (
    <p class={`call ${call.state}`} aria-live="polite">
      <span class="state">{label}</span>
      {call.ms !== undefined && <span class="latency">{call.ms} ms</span>}
      {call.value !== undefined && <output class="value">{format(call.value)}</output>}
      {call.error && <span class="error-text">{call.error}</span>}
    </p>
  );
}

const format = (value) => (typeof value === "object" ? JSON.stringify(value) : String(value));

export function download(filename, text, type = "application/json") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
