import { describeTrailStoreContract } from "@atomkit/testkit";
import { describe } from "vitest";
import { postgresTrail } from "../src";
import { dropSchema, freshSchema, KEY, PG_URL, pgMissing } from "./_pg";

// The contract every TrailStore passes (core's file and memory trails pass it in testkit), against the
// real PostgreSQL started by scripts/testbed/postgres.sh.
describe.skipIf(pgMissing)("postgresTrail", () => {
  for (const sealed of [true, false]) {
    describeTrailStoreContract({
      name: `postgresTrail (${sealed ? "sealed" : "unsealed"})`,
      async setup() {
        const schema = freshSchema();
        return {
          open: () => postgresTrail({ connectionString: PG_URL, schema, key: sealed ? KEY : false }),
          cleanup: () => dropSchema(schema).then(() => undefined),
        };
      },
    });
  }
});
