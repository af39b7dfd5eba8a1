// main.ts - the branchsync dashboard: log in with the node's API token,
// then the fleet of peers (worst first), the conflicts inbox, the
// exchange timeline and a record browser, kept live by the change feed
// (feed.ts) and refreshed every 5 s for ages and exchanges that change
// no record.

import { Api, dropToken, saveToken, takeToken } from "./api";
import { byId, h } from "./dom";
import { Change, Feed, FeedState } from "./feed";
import { renderConflicts } from "./conflicts";
import { renderFleet } from "./fleet";
import { Records } from "./records";
import { renderTimeline } from "./timeline";
import type { Conflict, Exchange, Status } from "./types";

const REFRESH_MS = 5000;
const FULL_MS = 60000;
const app = byId("app");

function login(why?: string): void {
  const input = h("input", {
    type: "password",
    id: "token",
    autocomplete: "off",
    placeholder: "API token",
    "aria-label": "API token",
  });
  const form = h(
    "form",
    { class: "login" },
    h("h1", {}, "branchsync"),
    h("p", {}, "Run ", h("code", {}, "branchsync -d DIR dashboard"), " and open the URL it prints, or paste the token ", h("code", {}, "branchsync -d DIR api-token"), " prints:"),
    input,
    h("button", { type: "submit" }, "Log in"),
    why ? h("p", { class: "err", id: "login-error" }, why) : null,
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (input.value.trim() === "") return;
    saveToken(input.value);
    start(input.value.trim());
  });
  app.replaceChildren(form);
  input.focus();
}

function section(id: string, title: string, ...extra: Node[]): HTMLElement {
  return h("section", { id }, h("h2", {}, title, ...extra), h("div", { class: "body" }));
}

function start(token: string): void {
  let feed: Feed | null = null;
  let timer = 0;
  let stopped = false;
  const stop = (why: string) => {
    if (stopped) return;
    stopped = true;
    feed?.stop();
    clearInterval(timer);
    dropToken();
    login(why);
  };
  const api = new Api(token, () => stop("The token was refused: run branchsync dashboard again for a fresh URL."));
  const live = h("span", { class: "live connecting", id: "feed-state" }, "connecting");
  const title = h("span", { class: "node" });
  const problems = h("div", { class: "problems", id: "problems" });
  const toast = h("div", { class: "toast", id: "toast", role: "status" });
  const records = new Records(api);
  const countBadge = h("span", { class: "count", id: "conflict-count" });
  const sFleet = section("fleet", "Peers");
  const sConf = section("conflicts", "Conflicts ", countBadge);
  const sTime = section("timeline", "Exchanges");
  const sRecs = section("browser", "Records");
  sRecs.querySelector(".body")?.append(records.el);
  const logout = h("button", { class: "logout", onclick: () => stop("Logged out.") }, "Log out");
  app.replaceChildren(
    h("header", {}, h("h1", {}, "branchsync"), title, live, logout),
    problems,
    toast,
    h("main", {}, h("div", { class: "col" }, sFleet, sConf), h("div", { class: "col" }, sTime, sRecs)),
  );
  const body = (s: HTMLElement) => s.querySelector(".body") as HTMLElement;
  let status: Status | null = null;
  const known = (id: string): string | null => {
    if (status === null) return null;
    if (status.id === id) return status.name;
    const p = status.peers.find((x) => x.id === id) ?? status.offices?.find((x) => x.id === id);
    return p ? p.name : null;
  };
  const names = {
    name: (id: string) => known(id) ?? id.slice(0, 8) + "…",
    take: (id: string) => known(id) ?? id,
  };
  const say = (msg: string, bad = false) => {
    toast.textContent = msg;
    toast.className = bad ? "toast show err" : "toast show";
    setTimeout(() => (toast.className = "toast"), 4000);
  };
  const fail = (where: HTMLElement, e: unknown) => {
    where.replaceChildren(h("p", { class: "err" }, String((e as Error).message)));
  };

  /* Counting records reads every record: the counts (and the list of
   * collections) are asked for at start, every minute, and when the feed
   * names a collection not seen yet; the frequent refreshes skip them. */
  let lastFull = 0;
  let needFull = true;
  let seen = new Set<string>();
  const loadStatus = async () => {
    try {
      const full = needFull || Date.now() - lastFull > FULL_MS;
      const st = await api.get<Status>(full ? "/v1/status" : "/v1/status?records=false");
      if (full) {
        lastFull = Date.now();
        needFull = false;
        seen = new Set(Object.keys(st.collections));
        records.setCollections(st.collections);
      }
      status = st;
      const now = Date.now();
      title.textContent = `${status.name} (${status.role}) · ${status.id.slice(0, 17)}…`;
      document.title = `branchsync · ${status.name}`;
      body(sFleet).replaceChildren(renderFleet(status.peers, status.problems, now));
      problems.replaceChildren(
        ...status.problems.map((p) => h("div", { class: "problem" }, h("b", {}, p.kind), ` ${p.what} — ${p.todo}`)),
      );
    } catch (e) {
      fail(body(sFleet), e);
    }
  };
  const loadConflicts = async () => {
    try {
      const list = await api.get<Conflict[]>("/v1/conflicts");
      countBadge.textContent = String(list.length);
      countBadge.className = list.length ? "count some" : "count";
      body(sConf).replaceChildren(
        renderConflicts(list, api, names, Date.now(), (msg) => {
          say("Resolved " + msg);
          void loadConflicts();
        }),
      );
    } catch (e) {
      fail(body(sConf), e);
    }
  };
  const loadLog = async () => {
    try {
      body(sTime).replaceChildren(renderTimeline(await api.get<Exchange[]>("/v1/log"), Date.now()));
    } catch (e) {
      fail(body(sTime), e);
    }
  };
  const refresh = async () => {
    await loadStatus(); /* first: the names of the offices */
    await Promise.all([loadConflicts(), loadLog()]);
  };

  let pending = 0;
  const onChange = (c: Change) => {
    void records.changed(c);
    if (!c.collection.startsWith("_") && !seen.has(c.collection)) needFull = true;
    if (pending === 0) /* a burst of changes: one refresh */
      pending = window.setTimeout(() => {
        pending = 0;
        void refresh();
      }, 300);
  };
  const onState = (s: FeedState, why?: string) => {
    live.textContent = s === "live" ? "live" : s === "connecting" ? "connecting" : "feed down";
    live.className = "live " + s;
    live.title = why ?? "";
  };
  void refresh().then(() => {
    if (stopped) return;
    feed = new Feed(api, onChange, onState);
    feed.start().catch((e) => onState("down", String(e)));
  });
  timer = window.setInterval(() => void refresh(), REFRESH_MS);
}

const token = takeToken();
if (token) start(token);
else login();
