// One device call from the browser: its state, the latency the user saw, and the value or the error.
import { devicePath, request } from "./api.js";

const STATES = { "device-offline": "offline", "device-timeout": "timed_out" };

export async function deviceCall(name, method, subject, body) {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  try {
    const answer = await request(method, `${devicePath(name)}/${subject}`, body);
    if (answer.notification_id) return { state: answer.state, ms: ms(), notification_id: answer.notification_id };
    return { state: answer.status === "succeeded" ? "succeeded" : answer.status, ms: ms(), value: answer.value,
             command: answer.command_id };
  } catch (error) {
    return { state: STATES[error.slug] || "failed", ms: ms(), error: error.message };
  }
}
