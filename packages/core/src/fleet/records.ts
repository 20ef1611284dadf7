import { hostname } from "node:os";
import { nowIso } from "../_utils";
import { AtomError } from "../errors";
import type { FleetHostResult } from "../fleet";
import {
  type FleetEndRecord,
  type FleetStartRecord,
  type FleetStatus,
  type RunSummary,
  runsWhere,
  type TrailStore,
} from "../trail";

// A fleet's own records: its start (hosts, options) and its end (each host's outcome), beside the host
// runs that name it.

/** The fleet's own start record and the host runs that name it. */
export async function readFleet(
  store: TrailStore,
  fleetId: string,
): Promise<{ fleet: FleetStartRecord; end?: FleetEndRecord; runs: RunSummary[] } | undefined> {
  const records = await store.readRun(fleetId);
  const fleet = records.find((r): r is FleetStartRecord => r.t === "fleet");
  if (!fleet || fleet.fleetId !== fleetId) return undefined;
  const end = records.find((r): r is FleetEndRecord => r.t === "fleet-end");
  const runs = await runsWhere(store, { fleet: fleetId });
  return { fleet, ...(end ? { end } : {}), runs };
}

/** A forward fleet's status from its hosts' states. */
export function fleetStatus(states: ReadonlyArray<FleetHostResult["state"]>): FleetStatus {
  if (states.includes("rollback-failed")) return "rollback-failed";
  if (states.every((s) => s === "committed")) return "committed";
  if (states.includes("committed")) return "partial";
  return "rolled-back";
}

/** Writes a fleet's start record, synced: the host runs that name the fleet come after it. */
export async function writeFleetStart(
  store: TrailStore,
  fleetId: string,
  f: Omit<FleetStartRecord, "t" | "v" | "fleetId" | "at" | "pid" | "machine">,
): Promise<void> {
  await store.append(
    fleetId,
    [{ t: "fleet", v: 2, fleetId, ...f, at: nowIso(), pid: process.pid, machine: hostname() }],
    {
      sync: true,
    },
  );
}

/** Writes a fleet's end record: each host's state and run ids; best effort (the host runs carry the outcome). */
export async function writeFleetEnd(
  store: TrailStore,
  fleetId: string,
  status: FleetStatus,
  hosts: FleetHostResult[],
) {
  const record: FleetEndRecord = {
    t: "fleet-end",
    fleetId,
    status,
    at: nowIso(),
    hosts: hosts.map((h) => ({
      host: h.host,
      state: h.state,
      ...(h.result ? { runId: h.result.runId } : {}),
      ...(h.undo ? { undoRunId: h.undo.runId } : {}),
    })),
  };
  // the host runs carry the outcome; a fleet summary the trail could not take is no reason to fail
  await store.append(fleetId, [record], { sync: true }).catch(() => {});
}

/** The refusal for an id that names no fleet run. */
export function notAFleet(fleetId: string): AtomError {
  return new AtomError("ATOM_RUN_NOT_FOUND", `no fleet run ${fleetId} in the trail`, {
    hint: "`atomkit trail` lists runs and fleets",
  });
}
