// A small time-series chart on a canvas: lines or stacked areas over a sliding window, gaps where
// data is missing (null values, or no sample for a while), a y axis in the series' unit, a legend
// with the latest values and a hover read-out. A line's points may carry a min and a max (history
// answered in buckets): the band between them is shaded under the line of the averages. No
// dependencies.

import { axis, clock, day, value } from "./format.js";
import { schedule, setText } from "./frame.js";

const PAD = { left: 46, right: 8, top: 8, bottom: 18 };
// Seconds between the time axis' labels of windows past an hour (the first giving at most six).
const LONG_TICKS = [3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400];
const charts = new Set();
let palette = null;

function colors() {
  if (palette === null) {
    const css = getComputedStyle(document.documentElement);
    palette = (name) => css.getPropertyValue(name).trim() || "#888";
  }
  return palette;
}

// Colours come from CSS variables; when the colour scheme flips, every chart is redrawn.
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
  palette = null;
  for (const c of charts) c.invalidate();
});

// The top of an automatic y axis: the next "round" number above v, in powers of 1024 for bytes
// (so that the four grid lines land on readable values: 0, 256 KiB, 512 KiB, 768 KiB, 1 MiB).
function niceMax(v, kind) {
  if (!(v > 0)) return 1;
  let unit = 1;
  if (kind === "rate" || kind === "bytes") while (v / unit >= 1024) unit *= 1024;
  const x = v / unit;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6, 8, 10]) if (m * p >= x) return m * p * unit;
  return 10 * p * unit;
}

// Index of the first element of sorted `a` that is >= x.
function lowerBound(a, x) {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class TimeChart {
  // host: an empty element. options: series [{label, color: "--css-var", stacked?}], kind ("pct",
  // "rate", "bytes", "num"), max (fixed top of the y axis, else automatic), floor (the automatic top
  // is at least this), window (seconds shown).
  constructor(host, { series, kind = "num", max = null, floor = 0, window = 600, legend = true }) {
    this.series = series;
    this.kind = kind;
    this.max = max;
    this.floor = floor;
    this.window = window;
    this.t = [];
    this.v = series.map(() => []);
    // Per series, per point: the bucket's min and max (null for a plain sample).
    this.lo = series.map(() => []);
    this.hi = series.map(() => []);
    this.hover = null;
    this.width = 0;
    this.height = 0;
    this.host = host;
    host.classList.add("chart");
    this.canvas = document.createElement("canvas");
    this.canvas.setAttribute("role", "img");
    this.tip = document.createElement("div");
    this.tip.className = "chart-tip";
    this.tip.hidden = true;
    host.append(this.canvas, this.tip);
    this.legendValues = [];
    if (legend) {
      const ul = document.createElement("ul");
      ul.className = "legend";
      for (const s of series) {
        const li = document.createElement("li");
        const swatch = document.createElement("i");
        swatch.style.background = `var(${s.color})`;
        const b = document.createElement("b");
        li.append(swatch, document.createTextNode(s.label + " "), b);
        ul.append(li);
        this.legendValues.push(b);
      }
      host.after(ul);
    }
    this.draw = this.draw.bind(this);
    this.resize = new ResizeObserver((entries) => {
      const r = entries[entries.length - 1].contentRect;
      this.width = r.width;
      this.height = r.height;
      this.invalidate();
    });
    this.resize.observe(this.canvas);
    this.canvas.addEventListener("pointermove", (e) => {
      this.hover = e.offsetX;
      this.invalidate();
    });
    this.canvas.addEventListener("pointerleave", () => {
      this.hover = null;
      this.invalidate();
    });
    charts.add(this);
  }

  invalidate() {
    schedule(this.draw);
  }

  setWindow(secs) {
    this.window = secs;
    this.invalidate();
  }

  destroy() {
    this.resize.disconnect();
    charts.delete(this);
  }

  clear() {
    this.t = [];
    this.v = this.series.map(() => []);
    this.lo = this.series.map(() => []);
    this.hi = this.series.map(() => []);
    this.updateLegend();
    this.invalidate();
  }

  // One point (values in series order, null for unknown). Out-of-order points are inserted in
  // place; a point at a timestamp already present replaces it.
  push(ts, values) {
    const t = this.t;
    let i = t.length;
    if (i > 0 && ts <= t[i - 1]) {
      i = lowerBound(t, ts);
      if (t[i] === ts) {
        values.forEach((x, k) => {
          this.v[k][i] = x;
          this.lo[k][i] = this.hi[k][i] = null;
        });
        this.invalidate();
        return;
      }
      t.splice(i, 0, ts);
      values.forEach((x, k) => {
        this.v[k].splice(i, 0, x);
        this.lo[k].splice(i, 0, null);
        this.hi[k].splice(i, 0, null);
      });
    } else {
      t.push(ts);
      values.forEach((x, k) => {
        this.v[k].push(x);
        this.lo[k].push(null);
        this.hi[k].push(null);
      });
    }
    this.trim();
    this.updateLegend();
    this.invalidate();
  }

  // Many points at once (a history answer): timestamps and one column per series; `bands`, when
  // the answer has buckets, one {min, max} (or null) per series.
  merge(timestamps, columns, bands = null) {
    const at = (col, j) => (col ? col[j] : null);
    for (let j = 0; j < timestamps.length; j++) {
      const ts = timestamps[j];
      const t = this.t;
      let i = t.length;
      if (i && ts <= t[i - 1]) {
        i = lowerBound(t, ts);
        if (t[i] === ts) continue; // live data wins over history
      }
      t.splice(i, 0, ts);
      columns.forEach((col, k) => {
        this.v[k].splice(i, 0, at(col, j));
        this.lo[k].splice(i, 0, at(bands?.[k]?.min, j));
        this.hi[k].splice(i, 0, at(bands?.[k]?.max, j));
      });
    }
    this.trim();
    this.updateLegend();
    this.invalidate();
  }

  trim() {
    const t = this.t;
    if (!t.length) return;
    const cut = lowerBound(t, t[t.length - 1] - this.window - 5);
    if (cut > 0) {
      t.splice(0, cut);
      for (const col of [...this.v, ...this.lo, ...this.hi]) col.splice(0, cut);
    }
  }

  updateLegend() {
    const n = this.t.length;
    this.legendValues.forEach((b, k) => setText(b, value(this.kind, n ? this.v[k][n - 1] : null)));
  }

  // Where the line breaks: no sample for more than 3 typical intervals.
  gapLimit() {
    const t = this.t;
    const n = t.length;
    if (n < 3) return Infinity;
    const diffs = [];
    for (let i = Math.max(1, n - 12); i < n; i++) diffs.push(t[i] - t[i - 1]);
    diffs.sort((a, b) => a - b);
    return Math.max(1.5, 3 * diffs[diffs.length >> 1]);
  }

  draw() {
    const { width, height } = this;
    this.host.dataset.points = String(this.t.length);
    if (!width || !height) return;
    const dpr = window.devicePixelRatio || 1;
    const cv = this.canvas;
    if (cv.width !== Math.round(width * dpr) || cv.height !== Math.round(height * dpr)) {
      cv.width = Math.round(width * dpr);
      cv.height = Math.round(height * dpr);
    }
    const ctx = cv.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const color = colors();
    const t = this.t;
    const n = t.length;
    // The newest point is "now" of a live window; a window of history buckets (past an hour) ends
    // at the browser's now, so that old buckets sit where they belong on the axis.
    const right = this.window > 3600 ? Math.max(n ? t[n - 1] : 0, Date.now() / 1000) : n ? t[n - 1] : Date.now() / 1000;
    const left = right - this.window;
    const first = lowerBound(t, left);
    const stacked = this.series.map((s) => !!s.stacked);

    // The y range: fixed, or the largest visible value (stacked series summed).
    let top = this.max;
    if (top == null) {
      let m = this.floor;
      for (let i = first; i < n; i++) {
        let sum = 0;
        this.series.forEach((s, k) => {
          const x = this.v[k][i];
          if (x == null) return;
          if (stacked[k]) sum += x;
          else m = Math.max(m, this.hi[k][i] ?? x);
        });
        m = Math.max(m, sum);
      }
      top = niceMax(m * 1.05, this.kind);
    }
    const plotW = width - PAD.left - PAD.right;
    const plotH = height - PAD.top - PAD.bottom;
    const X = (ts) => PAD.left + ((ts - left) / this.window) * plotW;
    const Y = (v) => PAD.top + plotH - (Math.min(v, top) / top) * plotH;

    // Grid and labels.
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = color("--muted");
    ctx.strokeStyle = color("--grid");
    ctx.lineWidth = 1;
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    for (let g = 0; g <= 4; g++) {
      const v = (top * g) / 4;
      const y = Math.round(Y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(PAD.left, y);
      ctx.lineTo(width - PAD.right, y);
      ctx.stroke();
      ctx.fillText(axis(this.kind, v), PAD.left - 6, y);
    }
    ctx.textBaseline = "alphabetic";
    ctx.textAlign = "center";
    const mins = this.window / 60;
    if (mins > 60) {
      // Hours and days: at most six labels.
      const tick = LONG_TICKS.find((s) => this.window / s <= 6) ?? LONG_TICKS[LONG_TICKS.length - 1];
      for (let s = 0; s <= this.window + 1e-9; s += tick) {
        const label = s === 0 ? "now" : s % 86400 === 0 ? `-${s / 86400}d` : `-${s / 3600}h`;
        ctx.fillText(label, Math.min(Math.max(X(right - s), PAD.left + 10), width - PAD.right - 12), height - 4);
      }
    }
    const step = mins > 30 ? 15 : mins > 10 ? 5 : mins > 4 ? 1 : mins > 1 ? 0.5 : 0.25;
    for (let m = 0; mins <= 60 && m <= mins + 1e-9; m += step) {
      const x = X(right - m * 60);
      const label = m === 0 ? "now" : m >= 60 && m % 60 === 0 ? `-${m / 60}h` : m < 1 ? `-${m * 60}s` : `-${m}m`;
      ctx.fillText(label, Math.min(Math.max(x, PAD.left + 10), width - PAD.right - 12), height - 4);
    }

    const gap = this.gapLimit();
    ctx.save();
    ctx.beginPath();
    ctx.rect(PAD.left, PAD.top, plotW, plotH);
    ctx.clip();

    // Stacked areas first (bottom to top), then the lines on top of them.
    if (stacked.some(Boolean)) {
      const base = new Float64Array(n);
      const valid = new Uint8Array(n);
      for (let i = first; i < n; i++) valid[i] = this.series.some((s, k) => stacked[k] && this.v[k][i] != null) ? 1 : 0;
      this.series.forEach((s, k) => {
        if (!stacked[k]) return;
        const col = this.v[k];
        ctx.fillStyle = color(s.color);
        ctx.globalAlpha = 0.85;
        let i = first;
        while (i < n) {
          while (i < n && !valid[i]) i++;
          let j = i;
          while (j + 1 < n && valid[j + 1] && t[j + 1] - t[j] <= gap) j++;
          if (i < n) {
            ctx.beginPath();
            for (let p = i; p <= j; p++) ctx.lineTo(X(t[p]), Y(base[p] + (col[p] ?? 0)));
            for (let p = j; p >= i; p--) ctx.lineTo(X(t[p]), Y(base[p]));
            ctx.closePath();
            ctx.fill();
          }
          i = j + 1;
        }
        for (let p = first; p < n; p++) base[p] += col[p] ?? 0;
      });
      ctx.globalAlpha = 1;
    }
    // Bands (min to max of each bucket) under the lines of the averages.
    let banded = 0;
    this.series.forEach((s, k) => {
      if (stacked[k]) return;
      const lo = this.lo[k];
      const hi = this.hi[k];
      ctx.fillStyle = color(s.color);
      ctx.globalAlpha = 0.22;
      let i = first;
      while (i < n) {
        while (i < n && (lo[i] == null || hi[i] == null)) i++;
        let j = i;
        while (j + 1 < n && lo[j + 1] != null && hi[j + 1] != null && t[j + 1] - t[j] <= gap) j++;
        if (i < n) {
          ctx.beginPath();
          for (let p = i; p <= j; p++) ctx.lineTo(X(t[p]), Y(hi[p]));
          for (let p = j; p >= i; p--) ctx.lineTo(X(t[p]), Y(lo[p]));
          ctx.closePath();
          ctx.fill();
          banded += j - i + 1;
        }
        i = j + 1;
      }
    });
    ctx.globalAlpha = 1;
    this.host.dataset.banded = String(banded);
    this.host.dataset.first = n > first ? String(t[first]) : "";

    ctx.lineWidth = 1.6;
    ctx.lineJoin = "round";
    this.series.forEach((s, k) => {
      if (stacked[k]) return;
      const col = this.v[k];
      ctx.strokeStyle = color(s.color);
      ctx.setLineDash(s.dashed ? [4, 3] : []);
      ctx.fillStyle = ctx.strokeStyle;
      ctx.beginPath();
      let pen = false;
      let run = 0; // points of the current stretch: one alone is drawn as a dot
      let last = null;
      const dot = () => run === 1 && ctx.fillRect(X(t[last]) - 1.5, Y(col[last]) - 1.5, 3, 3);
      for (let i = first; i < n; i++) {
        const x = col[i];
        if (x == null || (i > first && t[i] - t[i - 1] > gap)) {
          dot();
          pen = false;
          run = 0;
        }
        if (x == null) continue;
        if (pen) ctx.lineTo(X(t[i]), Y(x));
        else ctx.moveTo(X(t[i]), Y(x));
        pen = true;
        run++;
        last = i;
      }
      dot();
      ctx.stroke();
    });
    ctx.setLineDash([]);
    ctx.restore();

    // Hover: the nearest sample's time and values.
    if (this.hover != null && n > first) {
      const ts = left + ((this.hover - PAD.left) / plotW) * this.window;
      let i = Math.min(n - 1, Math.max(first, lowerBound(t, ts)));
      if (i > first && Math.abs(t[i - 1] - ts) < Math.abs(t[i] - ts)) i -= 1;
      const x = Math.round(X(t[i])) + 0.5;
      ctx.strokeStyle = color("--muted");
      ctx.beginPath();
      ctx.moveTo(x, PAD.top);
      ctx.lineTo(x, PAD.top + plotH);
      ctx.stroke();
      const band = (k) => (this.lo[k][i] != null && this.hi[k][i] != null ? ` (${value(this.kind, this.lo[k][i])} \u2013 ${value(this.kind, this.hi[k][i])})` : "");
      const when = this.window > 86400 ? `${day(t[i])} ${clock(t[i])}` : clock(t[i]);
      const lines = [when, ...this.series.map((s, k) => `${s.label}: ${value(this.kind, this.v[k][i])}${band(k)}`)];
      setText(this.tip, lines.join("\n"));
      this.tip.hidden = false;
      this.tip.style.transform = `translate(${x > width / 2 ? x - 8 : x + 8}px, ${PAD.top}px) translateX(${x > width / 2 ? "-100%" : "0"})`;
    } else if (!this.tip.hidden) {
      this.tip.hidden = true;
    }
  }
}
