// Hand-written SVG trend charts: no library, no inline style. Colours come
// from classes in console.css; every series also differs in shape (bars,
// a dashed line with markers) and is named in the legend, so colour is
// never the only signal. Each plotted bar or point carries data-series,
// data-date and data-value; screen readers get an aria-label summary and a
// visually hidden table of the same numbers.

const SVG_NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

function html(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

/** "2026-12-02" reads "12-02". */
/** What a plotted day carries for a reader that is not a pair of eyes. */
function datum(series, date, value) {
  return { "data-series": series.code, "data-date": date, "data-value": value };
}

export function shortDate(date) {
  return String(date).slice(5);
}

/** A step of 1, 2 or 5 times a power of ten, about a quarter of the top value. */
function scaleFor(max) {
  if (!(max > 0)) return { top: 4, step: 1 };
  const raw = max / 4;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  let step = power;
  for (const m of [1, 2, 5, 10]) {
    if (m * power >= raw) {
      step = m * power;
      break;
    }
  }
  step = Math.max(1, Math.round(step));
  const top = step * Math.ceil(max / step);
  return { top: Math.max(top, step), step };
}

function sum(values) {
  return values.reduce((a, b) => a + b, 0);
}

function summary(spec) {
  const dates = spec.dates;
  const first = dates.length ? shortDate(dates[0]) : "";
  const last = dates.length ? shortDate(dates[dates.length - 1]) : "";
  const parts = [spec.title + "，" + first + " 至 " + last + " 每日数字"];
  for (const series of spec.series) {
    const values = series.values;
    if (!values.length) continue;
    let peak = 0;
    values.forEach((v, i) => {
      if (v > values[peak]) peak = i;
    });
    parts.push(
      series.label +
        "：合计 " +
        sum(values) +
        "，最高 " +
        values[peak] +
        "（" +
        shortDate(dates[peak]) +
        "），" +
        last +
        " 为 " +
        values[values.length - 1],
    );
  }
  return parts.join("；") + "。";
}

/**
 * A trend chart.
 * spec: {
 *   chart: "quarantines" | "visits" | "crossings",
 *   title: "…",
 *   dates: ["YYYY-MM-DD", …],
 *   stacked: bool (bar series stacked into one bar per day),
 *   series: [{ code, label, kind: "bar" | "line", tone: "t1".."t4", values: [n, …] }]
 * }
 * Returns a <figure data-testid="trend-chart" data-chart=…>.
 */
export function trendChart(spec) {
  const W = 640;
  const H = 260;
  const left = 54;
  const right = 14;
  const top = 16;
  const bottom = 34;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const dates = spec.dates;
  const n = Math.max(1, dates.length);
  const slot = plotW / n;
  const bars = spec.series.filter((s) => s.kind === "bar");
  const lines = spec.series.filter((s) => s.kind !== "bar");

  let max = 0;
  for (let i = 0; i < dates.length; i += 1) {
    if (spec.stacked) {
      max = Math.max(max, sum(bars.map((s) => s.values[i] || 0)));
    } else {
      for (const s of bars) max = Math.max(max, s.values[i] || 0);
    }
    for (const s of lines) max = Math.max(max, s.values[i] || 0);
  }
  const { top: yTop, step } = scaleFor(max);
  const y = (v) => top + plotH - (v / yTop) * plotH;
  const xCenter = (i) => left + slot * i + slot / 2;

  const label = summary(spec);
  const root = svg("svg", {
    viewBox: "0 0 " + W + " " + H,
    role: "img",
    "aria-label": label,
    class: "chart-svg",
    preserveAspectRatio: "xMidYMid meet",
    focusable: "false",
  });
  root.append(svg("title", {}, spec.title));

  // Grid and the value axis.
  const grid = svg("g", { class: "chart-grid" });
  for (let v = 0; v <= yTop; v += step) {
    const gy = y(v);
    grid.append(svg("line", { x1: left, x2: W - right, y1: gy, y2: gy, class: v === 0 ? "axis-line" : "grid-line" }));
    grid.append(svg("text", { x: left - 6, y: gy + 4, class: "axis-label", "text-anchor": "end" }, String(v)));
  }
  root.append(grid);

  // Date axis: the chosen (last) date is always labelled, then every other day.
  const xAxis = svg("g", { class: "chart-x" });
  dates.forEach((date, i) => {
    if ((dates.length - 1 - i) % 2 !== 0) return;
    xAxis.append(
      svg("text", { x: xCenter(i), y: H - bottom + 18, class: "axis-label", "text-anchor": "middle" }, shortDate(date)),
    );
  });
  root.append(xAxis);

  // Bars.
  const barLayer = svg("g", { class: "chart-bars" });
  const groupW = slot * 0.72;
  dates.forEach((date, i) => {
    if (spec.stacked) {
      let base = 0;
      for (const s of bars) {
        const v = s.values[i] || 0;
        const y0 = y(base);
        const y1 = y(base + v);
        barLayer.append(
          svg(
            "rect",
            {
              x: xCenter(i) - groupW / 2,
              y: y1,
              width: groupW,
              height: Math.max(0, y0 - y1),
              class: "bar " + s.tone,
              ...datum(s, date, v),
            },
            svg("title", {}, shortDate(date) + " " + s.label + "：" + v),
          ),
        );
        base += v;
      }
    } else {
      const w = bars.length ? groupW / bars.length : groupW;
      bars.forEach((s, k) => {
        const v = s.values[i] || 0;
        const y1 = y(v);
        barLayer.append(
          svg(
            "rect",
            {
              x: xCenter(i) - groupW / 2 + k * w + 0.5,
              y: y1,
              width: Math.max(1, w - 1),
              height: Math.max(0, top + plotH - y1),
              class: "bar " + s.tone,
              ...datum(s, date, v),
            },
            svg("title", {}, shortDate(date) + " " + s.label + "：" + v),
          ),
        );
      });
    }
  });
  root.append(barLayer);

  // Lines with a marker on every day.
  for (const s of lines) {
    const layer = svg("g", { class: "chart-line " + s.tone });
    const d = dates.map((_, i) => (i === 0 ? "M" : "L") + xCenter(i).toFixed(1) + " " + y(s.values[i] || 0).toFixed(1)).join(" ");
    layer.append(svg("path", { d, class: "line " + s.tone }));
    dates.forEach((date, i) => {
      const v = s.values[i] || 0;
      layer.append(
        svg(
          "circle",
          {
            cx: xCenter(i).toFixed(1),
            cy: y(v).toFixed(1),
            r: 4,
            class: "point " + s.tone,
            ...datum(s, date, v),
          },
          svg("title", {}, shortDate(date) + " " + s.label + "：" + v),
        ),
      );
    });
    root.append(layer);
  }

  // Legend (text names every series; the swatch repeats its shape).
  const legend = html(
    "ul",
    { class: "legend", "aria-hidden": "true" },
    spec.series.map((s) =>
      html("li", {}, html("span", { class: "swatch " + (s.kind === "bar" ? "swatch-bar " : "swatch-line ") + s.tone }), s.label),
    ),
  );

  // The same numbers as a table for screen readers.
  const table = html(
    "table",
    { class: "vh" },
    html("caption", {}, spec.title + "（每日数字）"),
    html(
      "thead",
      {},
      html("tr", {}, html("th", { scope: "col" }, "日期"), spec.series.map((s) => html("th", { scope: "col" }, s.label))),
    ),
    html(
      "tbody",
      {},
      dates.map((date, i) =>
        html(
          "tr",
          {},
          html("th", { scope: "row" }, date),
          spec.series.map((s) => html("td", {}, String(s.values[i] || 0))),
        ),
      ),
    ),
  );

  const headingId = "chart-title-" + spec.chart;
  return html(
    "figure",
    { class: "chart", "data-testid": "trend-chart", "data-chart": spec.chart, "aria-labelledby": headingId },
    html("figcaption", { class: "chart-head" }, html("h3", { id: headingId }, spec.title), legend),
    root,
    table,
  );
}
