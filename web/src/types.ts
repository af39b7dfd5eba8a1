// types.ts - the JSON documents of the HTTP API the page reads.

export type Problem = { kind: string; subject: string; what: string; todo: string };

export type Peer = {
  name: string;
  endpoint: string;
  id: string;
  schedule: string;
  window: string;
  last_success_ms: number;
  last_error_ms: number;
  last_error: string;
  pending_out: number;
  pending_in: number;
  oldest_unacked_age_s: number;
  needs_full_resync: boolean;
  refused_sets: number;
  refused_reason: string;
  held_there: number;
  next_run_s: number | null;
};

export type Office = { name: string; id: string; role: string };

export type Status = {
  name: string;
  role: string;
  id: string;
  peers: Peer[];
  offices?: Office[];
  collections: Record<string, { records: number; deleted: number }>;
  conflicts: { open: number; total: number };
  problems: Problem[];
};

export type Candidate = { origin: string; hlc: number; value: unknown; deleted: boolean };

export type Conflict = {
  conflict: string;
  collection: string;
  id: string;
  field: string;
  candidates: Candidate[];
  winner: string;
  winner_value: unknown;
  policy: string;
  resolved: boolean;
  detected_ms: number;
  resolution?: string;
  /* "duplicate": two records hold one value of a unique key (ids, both
   * records; field, the key; candidates[i].value, the value ids[i] holds). */
  kind?: "field" | "duplicate";
  ids?: [string, string];
};

export type Exchange = {
  time_ms: number;
  peer: string;
  via: string;
  direction: string;
  sets_sent: number;
  sets_received: number;
  changes: number;
  conflicts: number;
  bytes: number;
  duration_ms: number;
  result: string;
};

export type Rec = { id: string; [field: string]: unknown };
