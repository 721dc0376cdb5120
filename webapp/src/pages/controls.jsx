// Controls for every device API (commands/device_apis.py): each shows its call's state and latency.
import { createContext, Fragment } from "preact";
import { useContext, useState } from "preact/hooks";
import { get } from "../api.js";
import { deviceCall, QUEUE_SECONDS } from "../calls.js";
import { Link } from "../router.jsx";
import { CallState, newId } from "../ui.jsx";

const QueueContext = createContext(false);

function useCall(name) {
  const queue = useContext(QueueContext);
  const [call, setCall] = useState(null);
  const run = async (method, subject, body) => {
    setCall({ state: "sending" });
    const result = await deviceCall(name, method, subject, body, { queue, onState: setCall });
    setCall(result);
    return result;
  };
  return [call, run, ["sending", "queued", "sent"].includes(call?.state)];
}

function Control({ title, children, call }) {
  const [id] = useState(() => newId("control"));
  return (
    <section class="control" aria-labelledby={id}>
      <h3 id={id}>{title}</h3>
      {children}
      <CallState call={call} />
    </section>
  );
}

function Status({ name }) {
  const [call, run, busy] = useCall(name);
  const [confirming, setConfirming] = useState(false);
  return (
    <Control title="Status" call={call}>
      <div class="actions">
        <button type="button" disabled={busy} onClick={() => run("GET", "status")}>Read status</button>
        {!confirming && <button type="button" class="secondary" disabled={busy} onClick={() => setConfirming(true)}>Restart…</button>}
        {confirming && <>
          <button type="button" class="danger" onClick={() => { setConfirming(false); run("PUT", "status", { value: "restart" }); }}>Restart now</button>
          <button type="button" class="secondary" onClick={() => setConfirming(false)}>Cancel restart</button>
        </>}
      </div>
    </Control>
  );
}

function Gpio({ name }) {
  const [call, run, busy] = useCall(name);
  const [pin, setPin] = useState("1");
  const [level, setLevel] = useState(null);
  const valid = /^\d+$/.test(pin) && Number(pin) <= 255;
  const read = async () => {
    const result = await run("GET", `gpio/${pin}`);
    if (result.state === "succeeded") setLevel(Number(result.value));
  };
  const write = async (value) => {
    const result = await run("PUT", `gpio/${pin}`, { value });
    if (result.state === "succeeded") setLevel(value);
  };
  return (
    <Control title="GPIO" call={call}>
      <div class="field short">
        <label for={`gpio-pin-${name}`}>GPIO number (0–255)</label>
        <input id={`gpio-pin-${name}`} inputmode="numeric" value={pin} aria-invalid={valid ? undefined : "true"}
               onInput={(e) => { setPin(e.currentTarget.value.trim()); setLevel(null); }} />
      </div>
      <div class="actions">
        <button type="button" disabled={busy || !valid} onClick={read}>Read GPIO</button>
        <button type="button" role="switch" aria-checked={level === 1 ? "true" : "false"} class="switch"
                disabled={busy || !valid} onClick={() => write(level === 1 ? 0 : 1)}>
          GPIO {valid ? pin : "?"} {level === null ? "(unknown): set high" : level ? "is high: set low" : "is low: set high"}
        </button>
      </div>
    </Control>
  );
}

function Rtc({ name }) {
  const [call, run, busy] = useCall(name);
  const [chosen, setChosen] = useState("");
  const shown = call?.state === "succeeded" && typeof call.value === "number"
    ? `${new Date(call.value * 1000).toLocaleString()} (epoch ${call.value})` : "";
  const set = (ms) => run("PUT", "rtc", { value: Math.floor(ms / 1000) });
  return (
    <Control title="Real-time clock" call={call}>
      {shown && <p class="value-line">Device time: {shown}</p>}
      <div class="actions">
        <button type="button" disabled={busy} onClick={() => run("GET", "rtc")}>Read clock</button>
        <button type="button" class="secondary" disabled={busy} onClick={() => set(Date.now())}>Set to this browser's time</button>
      </div>
      <div class="field short">
        <label for={`rtc-${name}`}>Or set a chosen time</label>
        <input id={`rtc-${name}`} type="datetime-local" value={chosen} onInput={(e) => setChosen(e.currentTarget.value)} />
      </div>
      <button type="button" class="secondary" disabled={busy || !chosen} onClick={() => set(new Date(chosen).getTime())}>Set chosen time</button>
    </Control>
  );
}

const NETWORK = [["mac", "MAC address"], ["ip", "IP address"], ["subnet", "Subnet mask"], ["gateway", "Gateway"]];

function Network({ name }) {
  const [calls, setCalls] = useState({});
  const readAll = () => Promise.all(NETWORK.map(async ([subject]) => {
    setCalls((c) => ({ ...c, [subject]: { state: "sending" } }));
    const result = await deviceCall(name, "GET", subject);
    setCalls((c) => ({ ...c, [subject]: result }));
  }));
  const busy = Object.values(calls).some((c) => c.state === "sending");
  return (
    <section class="control" aria-labelledby={`net-${name}`}>
      <h3 id={`net-${name}`}>Network</h3>
      <button type="button" disabled={busy} onClick={readAll}>Read MAC, IP, subnet and gateway</button>
      <dl class="facts">
        {NETWORK.map(([subject, label]) => (
          <Fragment key={subject}><dt>{label}</dt><dd><CallState call={calls[subject]} /></dd></Fragment>))}
      </dl>
    </section>
  );
}

function Uart({ name }) {
  const [call, run, busy] = useCall(name);
  const [text, setText] = useState("");
  return (
    <Control title="UART" call={call}>
      <form class="inline" onSubmit={(e) => { e.preventDefault(); run("PUT", "uart", { value: text }); }}>
        <div class="field">
          <label for={`uart-${name}`}>Text to send (up to 100 characters)</label>
          <input id={`uart-${name}`} maxlength="100" required value={text} onInput={(e) => setText(e.currentTarget.value)} />
        </div>
        <button type="submit" disabled={busy || !text}>Send to UART</button>
      </form>
    </Control>
  );
}

// The device echoes the request, then the platform's notifier delivers it (h/notify); its state is
// followed here until it is sent, failed or refused.
function Notification({ name }) {
  const [call, setCall] = useState(null);
  const send = async (recipient, message) => {
    setCall({ state: "sending" });
    const result = await deviceCall(name, "POST", "notifications", { recipient, message });
    setCall(result.state === "requested" ? { ...result, state: "succeeded", value: "requested" } : result);
    if (!result.notification_id) return;
    for (let i = 0; i < 40; i++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      try {
        const note = await get(`/v1/notifications/${result.notification_id}`);
        setCall((c) => ({ ...c, value: note.state }));
        if (["sent", "failed", "refused"].includes(note.state)) return;
      } catch { /* not projected yet */ }
    }
  };
  return (
    <Control title="Notification" call={call}>
      <form class="stack" onSubmit={(e) => {
        e.preventDefault();
        const data = new FormData(e.currentTarget);
        send(String(data.get("recipient")), String(data.get("message")));
      }}>
        <div class="field">
          <label for={`note-to-${name}`}>Recipient (email or phone)</label>
          <input id={`note-to-${name}`} name="recipient" required maxlength="64" autocomplete="off" />
        </div>
        <div class="field">
          <label for={`note-msg-${name}`}>Message</label>
          <input id={`note-msg-${name}`} name="message" required maxlength="64" />
        </div>
        <button type="submit" disabled={call?.state === "sending"}>Send notification</button>
      </form>
      <p><Link href={`/notifications?device=${encodeURIComponent(name)}`}>Notifications of {name}</Link></p>
    </Control>
  );
}

export function Controls({ name }) {
  const [queue, setQueue] = useState(false);
  return (
    <QueueContext.Provider value={queue}>
    <div class="check">
      <input id={`queue-${name}`} type="checkbox" checked={queue} onChange={(e) => setQueue(e.currentTarget.checked)} />
      <label for={`queue-${name}`}>Queue calls while the device is offline (up to {QUEUE_SECONDS / 60} minutes)</label>
    </div>
    <div class="controls">
      <Status name={name} />
      <Gpio name={name} />
      <Rtc name={name} />
      <Network name={name} />
      <Uart name={name} />
      <Notification name={name} />
    </div>
    </QueueContext.Provider>
  );
}
