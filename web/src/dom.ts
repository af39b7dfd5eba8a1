// dom.ts - building elements without innerHTML: every value shown comes
// from the node's data (records written at any office), so it is only
// ever set as text.

export type Child = Node | string | number | null | undefined | false;
type Attr = string | boolean | undefined | ((e: Event) => void);

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, Attr> = {},
  ...kids: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of kids)
    if (c !== null && c !== undefined && c !== false)
      el.append(typeof c === "number" ? String(c) : c);
  return el;
}

export function byId(id: string): HTMLElement {
  const e = document.getElementById(id);
  if (e === null) throw new Error("no element #" + id);
  return e;
}

/* "5 s", "3 min", "2 h", "4 d" */
export function span(s: number): string {
  if (s < 0) s = 0;
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

export function ago(ms: number, now: number): string {
  return ms > 0 ? span((now - ms) / 1000) + " ago" : "never";
}

export function clock(ms: number, now: number): string {
  const d = new Date(ms);
  const t = d.toLocaleTimeString([], { hour12: false });
  return new Date(now).toDateString() === d.toDateString()
    ? t
    : d.toISOString().slice(0, 10) + " " + t;
}

/* A JSON value as text, for a table cell. */
export function show(v: unknown): string {
  return typeof v === "string" ? v : JSON.stringify(v);
}
