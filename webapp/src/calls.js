// One device call from the browser: its state, the latency the user saw, and the value or the error.
import { devicePath, get, request } from "./api.js";

const STATES = { "device-offline": "offline", "device-timeout": "timed_out" };

const FINAL = new Set(["succeeded", "failed", "timed_out", "expired"]);
export const QUEUE_SECONDS = 300;

// `queue`: the call waits (queued) up to QUEUE_SECONDS for an offline device instead of failing at once;
// it is then followed through its states (queued, sent, succeeded...) by GET /v1/commands/{id}.
export async function deviceCall(name, method, subject, body, { queue = false, onState } = {}) {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  try {
    const query = queue ? `?wait=false&ttl=${QUEUE_SECONDS}` : "";
    const answer = await request(method, `${devicePath(name)}/${subject}${query}`, body);
    if (queue && answer.command_id && !FINAL.has(answer.status)) return follow(answer.command_id, ms, onState);
    if (answer.notification_id) return { state: answer.state, ms: ms(), notification_id: answer.notification_id };
    return { state: answer.status === "succeeded" ? "succeeded" : answer.status, ms: ms(), value: answer.value,
             command: answer.command_id };
  } catch (error) {
    return { state: STATES[error.slug] || "failed", ms: ms(), error: error.message };
  }
}

async function follow(commandId, ms, onState) {
  const deadline = Date.now() + (QUEUE_SECONDS + 90) * 1000;
  let last = "queued";
  onState?.({ state: last, command: commandId });
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 400));
    let command;
    try { command = await get(`/v1/commands/${commandId}`); } catch { continue; }
    if (command.status !== last) { last = command.status; onState?.({ state: last, command: commandId }); }
    if (FINAL.has(command.status)) {
      return { state: command.status, ms: ms(), value: command.result?.value ?? command.result,
               error: command.error || undefined, command: commandId };
    }
  }
  return { state: last, ms: ms(), error: "still not finished; see the history", command: commandId };
}
