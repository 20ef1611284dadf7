// Helpers that moved to `@atomkit/core/kit`, still exported from the main entry (deprecated) for the
// CLI's command files not yet switched over (commands/status.ts, commands/trail.ts, commands/unlock.ts,
// main.ts) and for third-party code. Each goes in a later minor.
import * as kit from "./kit";

/** @deprecated use `@atomkit/core/kit` */
export const breakLease = kit.breakLease;
/** @deprecated use `@atomkit/core/kit` */
export const closest = kit.closest;
/** @deprecated use `@atomkit/core/kit` */
export const foldRun = kit.foldRun;
/** @deprecated use `@atomkit/core/kit` */
export const liveRuns = kit.liveRuns;
/** @deprecated use `@atomkit/core/kit` */
export const readLease = kit.readLease;
/** @deprecated use `@atomkit/core/kit` */
export const undoneRuns = kit.undoneRuns;
