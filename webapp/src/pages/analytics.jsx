// Analytics (h/history: /v1/analytics/*): commands per day, success rate and latency percentiles per
// device API, and a CSV export. Everyone sees their own devices; analysts may look at everyone's or
// name one owner.
import { useEffect, useState } from "preact/hooks";
import { currentSession, get } from "../api.js";
import { Chart } from "../chart.jsx";
import { download, Notice } from "../ui.jsx";

const pct = (rate) => (rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)} %`);
const ms = (value) => (value === null || value === undefined ? "–" : Math.round(value));

async function exportCsv(query) {
  const session = currentSession();
  const response = await fetch(`/v1/analytics/export?format=csv${query ? `&${query}` : ""}`,
                               { headers: { authorization: `Bearer ${session.access_token}` } });
  if (!response.ok) throw new Error(`Export failed (${response.status})`);
  download("history.csv", await response.text(), "text/csv");
}

export function Analytics({ roles }) {
  const analyst = roles.includes("analyst");
  const [owner, setOwner] = useState("");
  const [from, setFrom] = useState("");
  const [data, setData] = useState(null);
  const [error, setError] = useState("");
  const params = new URLSearchParams();
  if (owner.trim()) params.set("owner", owner.trim());
  if (from) params.set("from", new Date(from).toISOString());
  const query = params.toString();

  useEffect(() => {
    let live = true;
    const q = query ? `&${query}` : "";
    Promise.all([get(`/v1/analytics/commands?bucket=day${q}`), get(`/v1/analytics/outcomes?by=api${q}`),
                 get(`/v1/analytics/latency?by=api${q}`)])
      .then(([commands, outcomes, latency]) => live && (setData({ commands: commands.rows, outcomes: outcomes.rows,
                                                                   latency: latency.rows }), setError("")),
            (e) => live && setError(e.message));
    return () => { live = false; };
  }, [query]);

  const days = {};
  for (const row of data?.commands || []) days[row.bucket] = (days[row.bucket] || 0) + row.commands;
  const dayKeys = Object.keys(days).sort();
  const latency = data?.latency || [];
  return (
    <section class="card">
      <h1>Analytics</h1>
      <p class="muted">{analyst ? "You hold the analyst role: everyone's devices, or one owner's." : "Your devices' calls."}</p>
      <div class="filters">
        {analyst && (
          <div class="field short">
            <label for="a-owner">Owner (empty: everyone)</label>
            <input id="a-owner" value={owner} onChange={(e) => setOwner(e.currentTarget.value)} />
          </div>
        )}
        <div class="field short">
          <label for="a-from">Since</label>
          <input id="a-from" type="datetime-local" value={from} onInput={(e) => setFrom(e.currentTarget.value)} />
        </div>
      </div>
      <button type="button" class="secondary" onClick={() => exportCsv(query).catch((e) => setError(e.message))}>
        Export the history as CSV
      </button>
      <Notice>{error}</Notice>
      {data && (
        <>
          <h2>Commands per day</h2>
          {dayKeys.length > 0
            ? <Chart title="Device calls per day" xLabels={dayKeys.map((d) => d.slice(0, 10))}
                     series={[{ label: "calls", stroke: "#0b5cad", points: true }]}
                     data={[dayKeys.map((_, i) => i), dayKeys.map((d) => days[d])]} />
            : <p class="muted">No calls yet.</p>}
          <table>
            <caption>Calls per day</caption>
            <thead><tr><th scope="col">Day</th><th scope="col">Calls</th></tr></thead>
            <tbody>{dayKeys.map((d) => <tr key={d}><td>{d.slice(0, 10)}</td><td>{days[d]}</td></tr>)}</tbody>
          </table>
          <h2>Success rate and latency per device API</h2>
          {latency.length > 0 && (
            <Chart title="Latency percentiles per device API (ms)" xLabels={latency.map((r) => r.api)}
                   series={[{ label: "p50", stroke: "#146c2e", points: true }, { label: "p95", stroke: "#b35c00", points: true },
                            { label: "p99", stroke: "#a4161a", points: true }]}
                   data={[latency.map((_, i) => i), latency.map((r) => r.p50_ms), latency.map((r) => r.p95_ms),
                          latency.map((r) => r.p99_ms)]} />
          )}
          <div class="table-scroll" tabIndex="0" role="region" aria-label="Outcomes and latency table (scrolls sideways)">
            <table>
              <caption>Outcomes and latency per device API</caption>
              <thead><tr><th scope="col">API</th><th scope="col">Calls</th><th scope="col">Success</th>
                <th scope="col">Timeouts</th><th scope="col">p50 ms</th><th scope="col">p95 ms</th><th scope="col">p99 ms</th></tr></thead>
              <tbody>{data.outcomes.map((row) => {
                const lat = latency.find((r) => r.api === row.api) || {};
                return (<tr key={row.api}><td>{row.api}</td><td>{row.commands}</td><td>{pct(row.success_rate)}</td>
                  <td>{pct(row.timeout_rate)}</td><td>{ms(lat.p50_ms)}</td><td>{ms(lat.p95_ms)}</td><td>{ms(lat.p99_ms)}</td></tr>);
              })}</tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}
