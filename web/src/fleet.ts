// fleet.ts - the peers, worst first, coloured by how stale they are.

import { ago, h, span } from "./dom";
import type { Peer, Problem } from "./types";

export type Health = { rank: number; cls: "bad" | "warn" | "ok"; why: string };

/* Lower rank: worse.  A problem /health lists for the peer, a failed last
 * exchange or a peer past the retention limit is red; refused or held
 * sets, a peer never reached, or changes unacknowledged for over 5 min
 * are amber; the rest green. */
export function health(p: Peer, problems: Problem[]): Health {
  const mine = problems.filter((x) => x.subject === p.name);
  if (p.needs_full_resync) return { rank: 0, cls: "bad", why: "needs a full resync" };
  if (mine.length > 0) return { rank: 1, cls: "bad", why: mine[0].what };
  if (p.last_error !== "" && p.last_error_ms > p.last_success_ms)
    return { rank: 1, cls: "bad", why: "last exchange failed" };
  if (p.refused_sets > 0) return { rank: 2, cls: "warn", why: `${p.refused_sets} sets refused` };
  if (p.held_there > 0) return { rank: 2, cls: "warn", why: `${p.held_there} sets held there` };
  if (p.last_success_ms === 0) return { rank: 3, cls: "warn", why: "never exchanged" };
  if (p.pending_out > 0 && p.oldest_unacked_age_s > 300)
    return { rank: 3, cls: "warn", why: `lagging ${span(p.oldest_unacked_age_s)}` };
  return { rank: 4, cls: "ok", why: "in step" };
}

export function renderFleet(peers: Peer[], problems: Problem[], now: number): HTMLElement {
  if (peers.length === 0) return h("p", { class: "empty" }, "No peers paired yet (branchsync peer add).");
  const rows = peers
    .map((p) => ({ p, hl: health(p, problems) }))
    .sort(
      (a, b) =>
        a.hl.rank - b.hl.rank ||
        b.p.oldest_unacked_age_s - a.p.oldest_unacked_age_s ||
        a.p.last_success_ms - b.p.last_success_ms ||
        a.p.name.localeCompare(b.p.name),
    );
  return h(
    "table",
    { class: "fleet" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", {}, "peer"),
        h("th", {}, "state"),
        h("th", {}, "last success"),
        h("th", { class: "num" }, "pending out / in"),
        h("th", { class: "num" }, "lag"),
        h("th", {}, "schedule"),
        h("th", {}, "last error"),
      ),
    ),
    h(
      "tbody",
      {},
      ...rows.map(({ p, hl }) =>
        h(
          "tr",
          { class: "peer " + hl.cls, "data-peer": p.name, "data-health": hl.cls },
          h("td", {}, h("span", { class: "dot " + hl.cls }), h("b", {}, p.name), h("div", { class: "sub" }, p.endpoint)),
          h("td", {}, hl.why),
          h("td", {}, ago(p.last_success_ms, now)),
          h("td", { class: "num" }, `${p.pending_out} / ${p.pending_in}`),
          h("td", { class: "num" }, p.pending_out > 0 ? span(p.oldest_unacked_age_s) : "–"),
          h(
            "td",
            {},
            p.schedule + (p.window ? ` (${p.window})` : ""),
            p.next_run_s ? h("div", { class: "sub" }, "next in " + span(p.next_run_s - now / 1000)) : null,
          ),
          h(
            "td",
            { class: "err" },
            p.last_error ? `${p.last_error} (${ago(p.last_error_ms, now)})` : "",
            p.refused_reason ? h("div", { class: "sub" }, p.refused_reason) : null,
          ),
        ),
      ),
    ),
  );
}
