// api.ts - the HTTP API (docs/api.md) with the node's bearer token.
//
// The token arrives in the URL's fragment (branchsync dashboard prints
// http://ADDR/#token=TOKEN; a fragment is never sent to the server, so it
// appears in no log), is kept in this tab's sessionStorage, and the
// fragment is removed from the address bar at once.

const KEY = "branchsync.token";

export function takeToken(): string | null {
  const m = /^#token=([0-9A-Fa-f]+)$/.exec(location.hash);
  if (m !== null) {
    sessionStorage.setItem(KEY, m[1].toLowerCase());
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY);
}

export function saveToken(t: string): void {
  sessionStorage.setItem(KEY, t.trim().toLowerCase());
}

export function dropToken(): void {
  sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

export class Api {
  constructor(
    public token: string,
    private unauthorized: () => void,
  ) {}

  headers(): Record<string, string> {
    return { Authorization: "Bearer " + this.token };
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const init: RequestInit = { method, headers: this.headers(), cache: "no-store" };
    if (body !== undefined) init.body = JSON.stringify(body);
    const r = await fetch(path, init);
    const text = await r.text();
    let j: unknown = null;
    try {
      j = text ? JSON.parse(text) : null;
    } catch {
      j = null;
    }
    if (r.status === 401) this.unauthorized();
    if (!r.ok) {
      const e = (j as { error?: string } | null)?.error;
      throw new ApiError(r.status, e ?? `HTTP ${r.status}`);
    }
    return j as T;
  }

  get<T>(path: string): Promise<T> {
    return this.call<T>("GET", path);
  }
}
