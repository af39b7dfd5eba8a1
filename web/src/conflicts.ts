// conflicts.ts - the inbox of open conflicts, each with a button per side
// (keep that office's value, POST /v1/conflicts/{id}/resolve {"take"}) and
// a field for a new value ({"value"}).

import { Api } from "./api";
import { ago, h, show } from "./dom";
import type { Conflict } from "./types";

/* An office's name for display, and what to send as "take": its name
 * when known (the resolution then reads "took tallinn"), else its ID. */
export type Names = { name: (id: string) => string; take: (id: string) => string };

export function renderConflicts(
  list: Conflict[],
  api: Api,
  who: Names,
  now: number,
  resolved: (msg: string) => void,
): HTMLElement {
  if (list.length === 0) return h("p", { class: "empty", id: "no-conflicts" }, "No open conflicts.");
  return h("div", { class: "inbox" }, ...list.map((c) => card(c, api, who, now, resolved)));
}

function card(c: Conflict, api: Api, who: Names, now: number, resolved: (msg: string) => void): HTMLElement {
  const name = who.name;
  const msg = h("div", { class: "msg" });
  const buttons: HTMLButtonElement[] = [];
  const send = async (body: unknown, label: string) => {
    buttons.forEach((b) => (b.disabled = true));
    msg.textContent = "resolving…";
    msg.className = "msg";
    try {
      const r = await api.call<{ resolution: string }>(
        "POST",
        `/v1/conflicts/${encodeURIComponent(c.conflict)}/resolve`,
        body,
      );
      resolved(`${c.collection}/${c.id} ${c.field}: ${r.resolution ?? label}`);
    } catch (e) {
      msg.textContent = String((e as Error).message);
      msg.className = "msg err";
      buttons.forEach((b) => (b.disabled = false));
    }
  };
  const sides = c.candidates.map((s) => {
    const b = h(
      "button",
      { class: "take", "data-take": s.origin, onclick: () => void send({ take: who.take(s.origin) }, "took " + name(s.origin)) },
      "Keep " + name(s.origin),
    );
    buttons.push(b);
    return h(
      "li",
      { class: s.origin === c.winner ? "side winner" : "side" },
      h("span", { class: "who" }, name(s.origin)),
      h("code", {}, s.deleted ? "(deleted)" : show(s.value)),
      s.origin === c.winner ? h("span", { class: "tag" }, "applied now") : null,
      b,
    );
  });
  const input = h("input", { type: "text", placeholder: 'new value as JSON, e.g. "Tartu"', "aria-label": "new value" });
  const set = h(
    "button",
    {
      class: "set",
      onclick: () => {
        let v: unknown;
        try {
          v = JSON.parse(input.value);
        } catch {
          msg.textContent = 'not JSON: write a string in quotes ("Tartu"), a number, true, false or null';
          msg.className = "msg err";
          return;
        }
        void send({ value: v }, "set");
      },
    },
    "Set value",
  );
  buttons.push(set);
  return h(
    "article",
    { class: "conflict", "data-conflict": c.conflict },
    h(
      "header",
      {},
      h("b", {}, `${c.collection} / ${c.id}`),
      " · field ",
      h("code", {}, c.field),
      h("span", { class: "sub" }, ` · ${c.policy} · detected ${ago(c.detected_ms, now)} · ${c.conflict}`),
    ),
    h("ul", {}, ...sides),
    h("div", { class: "setrow" }, input, set),
    msg,
  );
}
