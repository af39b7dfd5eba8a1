// conflicts.ts - the inbox of open conflicts, each with a button per side
// (keep that office's value, POST /v1/conflicts/{id}/resolve {"take"}) and
// a field for a new value ({"value"}); a duplicate of a unique key instead
// shows both records and a button per record (keep it and merge the other
// into it, POST /v1/collections/{c}/merge {"keep", "other"}).

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
  return h(
    "div",
    { class: "inbox" },
    ...list.map((c) =>
      c.kind === "duplicate" && c.ids ? duplicate(c, c.ids, api, who, now, resolved) : card(c, api, who, now, resolved),
    ),
  );
}

/* POST path with body, the card's buttons disabled meanwhile; done(answer)
 * on success, else the error shown in msg and the buttons enabled again. */
function poster<T>(api: Api, msg: HTMLElement, buttons: HTMLButtonElement[]) {
  return async (path: string, body: unknown, done: (r: T) => void) => {
    buttons.forEach((b) => (b.disabled = true));
    msg.textContent = "resolving…";
    msg.className = "msg";
    try {
      done(await api.call<T>("POST", path, body));
    } catch (e) {
      msg.textContent = String((e as Error).message);
      msg.className = "msg err";
      buttons.forEach((b) => (b.disabled = false));
    }
  };
}

/* Two records holding one value of a unique key: keep one, merge the
 * other into it (branchsync merge COLL KEEP OTHER). */
function duplicate(
  c: Conflict,
  ids: [string, string],
  api: Api,
  who: Names,
  now: number,
  resolved: (msg: string) => void,
): HTMLElement {
  const msg = h("div", { class: "msg" });
  const buttons: HTMLButtonElement[] = [];
  const post = poster<{ kept: string; merged: string }>(api, msg, buttons);
  const rows = ids.map((keep, i) => {
    const other = ids[1 - i];
    const b = h(
      "button",
      {
        class: "keep",
        "data-keep": keep,
        onclick: () =>
          void post(`/v1/collections/${encodeURIComponent(c.collection)}/merge`, { keep, other }, (r) =>
            resolved(`${c.collection}/${r.merged ?? other} merged into ${r.kept ?? keep}`),
          ),
      },
      `Keep ${keep} (merge ${other} into it)`,
    );
    buttons.push(b);
    const side = c.candidates[i];
    return h(
      "li",
      { class: "side", "data-id": keep },
      h("span", { class: "who" }, keep),
      h("code", {}, side ? show(side.value) : ""),
      side ? h("span", { class: "sub" }, "written at " + who.name(side.origin)) : null,
      b,
    );
  });
  return h(
    "article",
    { class: "conflict duplicate", "data-conflict": c.conflict },
    h(
      "header",
      {},
      h("b", {}, `${c.collection} / ${ids[0]} and ${ids[1]}`),
      " · duplicate key ",
      h("code", {}, c.field),
      " = ",
      h("code", { class: "shared" }, c.candidates[0] ? show(c.candidates[0].value) : ""),
      h("span", { class: "sub" }, ` · detected ${ago(c.detected_ms, now)} · ${c.conflict}`),
    ),
    h("ul", {}, ...rows),
    msg,
  );
}

function card(c: Conflict, api: Api, who: Names, now: number, resolved: (msg: string) => void): HTMLElement {
  const name = who.name;
  const msg = h("div", { class: "msg" });
  const buttons: HTMLButtonElement[] = [];
  const post = poster<{ resolution: string }>(api, msg, buttons);
  const send = (body: unknown, label: string) =>
    post(`/v1/conflicts/${encodeURIComponent(c.conflict)}/resolve`, body, (r) =>
      resolved(`${c.collection}/${c.id} ${c.field}: ${r.resolution ?? label}`),
    );
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
