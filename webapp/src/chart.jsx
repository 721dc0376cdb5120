// A uPlot chart, loaded on first use (the library stays out of the first page's JavaScript). The canvas
// is decorative for screen readers: every chart sits beside a table or list with the same numbers.
import { useEffect, useRef, useState } from "preact/hooks";

let loading = null;
const loadUplot = () => (loading ||= Promise.all([import("uplot"), import("uplot/dist/uPlot.min.css")])
  .then(([module]) => module.default));

// series: [{ label, stroke, points?: true }], data: [xs (epoch seconds or indexes), ...ys]
export function Chart({ title, series, data, xLabels, height = 220 }) {
  const box = useRef(null);
  const [failed, setFailed] = useState("");
  useEffect(() => {
    let plot = null;
    let observer = null;
    let cancelled = false;
    loadUplot().then((uPlot) => {
      if (cancelled || !box.current) return;
      const width = () => Math.max(260, box.current.clientWidth);
      const axes = xLabels
        ? [{ values: (u, ticks) => ticks.map((t) => xLabels[t] ?? "") }, {}]
        : [{}, {}];
      plot = new uPlot({
        width: width(), height, axes,
        scales: { x: { time: !xLabels } },
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2,
                                             points: { show: Boolean(s.points), size: 6, fill: s.stroke },
                                             paths: s.points ? () => null : undefined }))],
      }, data, box.current);
      observer = new ResizeObserver(() => plot.setSize({ width: width(), height }));
      observer.observe(box.current);
    }, (error) => setFailed(String(error)));
    return () => { cancelled = true; observer?.disconnect(); plot?.destroy(); };
  }, [JSON.stringify(data)]);
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} aria-hidden="true" />
      {failed && <p class="muted">The chart could not be drawn.</p>}
    </figure>
  );
}
