// timeline.ts - the exchange log (GET /v1/log), newest first.

import { clock, h } from "./dom";
import type { Exchange } from "./types";

export function renderTimeline(log: Exchange[], now: number): HTMLElement {
  if (log.length === 0) return h("p", { class: "empty" }, "No exchanges yet.");
  return h(
    "ol",
    { class: "timeline" },
    ...log
      .slice()
      .reverse()
      .map((e) =>
        h(
          "li",
          { class: e.result === "ok" ? "ok" : "bad", "data-peer": e.peer },
          h("time", {}, clock(e.time_ms, now)),
          h("b", {}, e.peer),
          h("span", { class: "sub" }, `${e.via} ${e.direction}`),
          h(
            "span",
            {},
            `↑${e.sets_sent} ↓${e.sets_received} sets · ${e.changes} changes` +
              (e.conflicts ? ` · ${e.conflicts} conflicts` : "") +
              ` · ${e.duration_ms} ms`,
          ),
          h("span", { class: e.result === "ok" ? "res" : "res err" }, e.result),
        ),
      ),
  );
}
