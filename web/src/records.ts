// records.ts - a record browser per collection: pages of
// GET /v1/collections/{c}/records (500 at a time, "more" for the next),
// a search over the records loaded (ID and field values), an exact ID
// looked up directly, and rows kept live from the change feed.

import { Api, ApiError } from "./api";
import { h, show } from "./dom";
import type { Change } from "./feed";
import type { Rec } from "./types";

const PAGE = 500;

export class Records {
  readonly el = h("div", { class: "records" });
  private select = h("select", { id: "collection", "aria-label": "collection" });
  private search = h("input", { type: "search", id: "search", placeholder: "search ID or values", "aria-label": "search" });
  private more = h("button", { class: "more" }, "Load more");
  private body = h("div");
  private info = h("div", { class: "sub" });
  private coll = "";
  private rows = new Map<string, Rec>();
  private next: string | null = null;
  private flash = new Set<string>();
  private colls: string[] = [];
  private exact: Rec | null = null;

  constructor(private api: Api) {
    this.select.addEventListener("change", () => void this.open(this.select.value));
    this.search.addEventListener("input", () => void this.lookup());
    this.more.addEventListener("click", () => void this.page());
    this.el.append(h("div", { class: "bar" }, this.select, this.search, this.more), this.info, this.body);
  }

  /* The user collections (from status); opens the first one. */
  setCollections(counts: Record<string, { records: number }>): void {
    const names = Object.keys(counts)
      .filter((c) => !c.startsWith("_"))
      .sort();
    if (names.join("\n") !== this.colls.join("\n")) {
      this.colls = names;
      this.select.replaceChildren(...names.map((c) => h("option", { value: c }, c)));
      if (names.length > 0 && !names.includes(this.coll)) void this.open(names[0]);
      else this.select.value = this.coll;
    }
    if (this.coll && counts[this.coll]) this.total = counts[this.coll].records;
    this.render();
  }

  private total = 0;

  async open(coll: string): Promise<void> {
    this.coll = coll;
    this.select.value = coll;
    this.rows.clear();
    this.next = null;
    this.exact = null;
    await this.page(true);
  }

  private async page(first = false): Promise<void> {
    const coll = this.coll;
    const after = first ? "" : this.next ? "&after=" + encodeURIComponent(this.next) : "";
    if (!first && this.next === null) return;
    try {
      const j = await this.api.get<{ records: Rec[]; next: string | null }>(
        `/v1/collections/${encodeURIComponent(coll)}/records?limit=${PAGE}${after}`,
      );
      if (coll !== this.coll) return;
      for (const r of j.records) this.rows.set(r.id, r);
      this.next = j.next;
      this.render();
    } catch (e) {
      this.info.textContent = String((e as Error).message);
    }
  }

  /* An ID typed in full that is not among the loaded rows: ask for it. */
  private async lookup(): Promise<void> {
    const q = this.search.value.trim();
    this.exact = null;
    this.render();
    if (q === "" || this.rows.has(q) || this.next === null) return;
    try {
      const r = await this.api.get<Rec>(`/v1/collections/${encodeURIComponent(this.coll)}/records/${encodeURIComponent(q)}`);
      if (this.search.value.trim() === q) {
        this.exact = r;
        this.render();
      }
    } catch (e) {
      if (!(e instanceof ApiError && (e.status === 404 || e.status === 400))) throw e;
    }
  }

  /* A change from the feed: fetch the record again, or drop it. */
  async changed(c: Change): Promise<void> {
    if (c.collection !== this.coll) return;
    const loaded = this.rows.has(c.id) || this.next === null || c.id <= (this.next ?? "");
    if (!loaded) return;
    if (c.deleted) {
      this.rows.delete(c.id);
      this.render();
      return;
    }
    try {
      const r = await this.api.get<Rec>(`/v1/collections/${encodeURIComponent(c.collection)}/records/${encodeURIComponent(c.id)}`);
      if (c.collection !== this.coll) return;
      this.rows.set(r.id, r);
      this.flash.add(r.id);
      setTimeout(() => {
        this.flash.delete(r.id);
        this.render();
      }, 1500);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) this.rows.delete(c.id);
    }
    this.render();
  }

  private render(): void {
    const q = this.search.value.trim().toLowerCase();
    const ids = [...this.rows.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    let list = ids.map((id) => this.rows.get(id) as Rec);
    if (q) list = list.filter((r) => JSON.stringify(r).toLowerCase().includes(q));
    if (this.exact && !list.some((r) => r.id === this.exact?.id)) list.unshift(this.exact);
    this.more.hidden = this.next === null;
    this.info.textContent = this.coll
      ? `${this.coll}: ${this.total} records, ${this.rows.size} loaded` + (q ? `, ${list.length} match` : "") +
        (q && this.next !== null ? " (search covers the loaded ones and an exact ID)" : "")
      : "No collections yet.";
    if (list.length === 0) {
      this.body.replaceChildren(h("p", { class: "empty" }, this.coll ? "No records." : ""));
      return;
    }
    const shown = list.slice(0, 1000);
    const more =
      list.length > shown.length ? [h("p", { class: "sub" }, `first ${shown.length} of ${list.length} shown`)] : [];
    this.body.replaceChildren(
      h(
        "table",
        { class: "recs" },
        h("thead", {}, h("tr", {}, h("th", {}, "id"), h("th", {}, "fields"))),
        h(
          "tbody",
          {},
          ...shown.map((r) =>
            h(
              "tr",
              { "data-id": r.id, class: this.flash.has(r.id) ? "flash" : undefined },
              h("td", {}, h("code", {}, r.id)),
              h(
                "td",
                { class: "fields" },
                ...Object.entries(r)
                  .filter(([k]) => k !== "id")
                  .map(([k, v]) => h("span", { class: "kv" }, h("i", {}, k), show(v))),
              ),
            ),
          ),
        ),
      ),
      ...more,
    );
  }
}
