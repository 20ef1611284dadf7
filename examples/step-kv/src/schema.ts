import { ParamsFieldError, type StandardSchemaV1, show } from "@atomkit/core";

/**
 * A params schema from one check per field, reporting EVERY invalid field (and every unknown key) at
 * once. A plain params function stops at its first throw; a Standard Schema returns all its issues, and
 * the engine lists each one with its step and field. Each check returns the field's value or throws a
 * ParamsFieldError (core's helpers such as `absolutePath` do).
 */
export function fieldsSchema<In, Out>(
  vendor: string,
  checks: { [K in keyof Out]: (value: unknown) => Out[K] },
): StandardSchemaV1<In, Out> {
  const fields = Object.keys(checks) as (keyof Out & string)[];
  return {
    "~standard": {
      version: 1,
      vendor,
      validate(input) {
        if (input === null || typeof input !== "object" || Array.isArray(input)) {
          return { issues: [{ message: `expected an object of params, found ${show(input)}` }] };
        }
        const issues: StandardSchemaV1.Issue[] = [];
        for (const key of Object.keys(input)) {
          if (!(fields as string[]).includes(key)) {
            issues.push({ path: [key], message: `unknown param "${key}" (known: ${fields.join(", ")})` });
          }
        }
        const value = {} as Out;
        for (const field of fields) {
          try {
            value[field] = checks[field]((input as Record<string, unknown>)[field]);
          } catch (error) {
            const path = error instanceof ParamsFieldError && error.path ? error.path : field;
            issues.push({ path: path.split("."), message: (error as Error).message });
          }
        }
        return issues.length ? { issues } : { value };
      },
    },
  };
}
