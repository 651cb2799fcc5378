// Number formatting for the dashboard. A value hvstat could not know is null on the wire and "—"
// here: never 0.

export const NONE = "\u2014";

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

function scaled(v, base, units, digits) {
  let i = 0;
  let x = Math.abs(v);
  while (x >= base && i < units.length - 1) {
    x /= base;
    i += 1;
  }
  const d = i === 0 ? 0 : x < 10 ? digits : x < 100 ? Math.max(0, digits - 1) : 0;
  return `${v < 0 ? "-" : ""}${x.toFixed(d)} ${units[i]}`;
}

export function bytes(v, digits = 1) {
  return v == null ? NONE : scaled(v, 1024, BYTE_UNITS, digits);
}

export function rate(v, digits = 1) {
  return v == null ? NONE : `${scaled(v, 1024, BYTE_UNITS, digits)}/s`;
}

export function pct(v, digits = 1) {
  return v == null ? NONE : `${v.toFixed(digits)} %`;
}

export function num(v, digits = 2) {
  return v == null ? NONE : v.toFixed(digits);
}

export function int(v) {
  return v == null ? NONE : String(Math.round(v));
}

export function limit(v) {
  if (v == null) return NONE;
  return v === "max" ? "no limit" : bytes(v);
}

export function duration(secs) {
  if (secs == null) return NONE;
  const d = Math.floor(secs / 86400);
  const h = Math.floor((secs % 86400) / 3600);
  const m = Math.floor((secs % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return `${m}m ${Math.floor(secs % 60)}s`;
}

export function clock(ts) {
  if (ts == null) return NONE;
  return new Date(ts * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// The date of a unix time, short ("Mar 3"), for ranges of days.
export function day(ts) {
  if (ts == null) return NONE;
  return new Date(ts * 1000).toLocaleDateString([], { month: "short", day: "numeric" });
}

// Axis labels: short, for a chart's y axis.
export function axis(kind, v) {
  if (kind === "pct") return `${+v.toFixed(1)}%`;
  if (kind === "rate" || kind === "bytes") return scaled(v, 1024, BYTE_UNITS, 1).replace(".0 ", " ").replace(" ", "");
  return Math.abs(v) >= 10 ? v.toFixed(0) : `${+v.toFixed(2)}`;
}

export function value(kind, v) {
  switch (kind) {
    case "pct":
      return pct(v);
    case "rate":
      return rate(v);
    case "bytes":
      return bytes(v);
    default:
      return num(v);
  }
}
