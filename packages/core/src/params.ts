import { ParamsError, type ParamsIssue } from "./errors";
import { fieldIssues, ParamsFieldError } from "./fields";
import { Redactor } from "./redact";
import type { ParamsSchema, Step } from "./step";
import type { StandardSchemaV1 } from "./types";

/** Validates one step's params; returns the parsed params or the issues found. */
export async function validateParams(
  step: Step,
): Promise<{ value: unknown; issues?: undefined } | { issues: ParamsIssue[] }> {
  const schema = step.definition.params as StandardSchemaV1 | ((input: unknown) => unknown);
  const issue = (path: string, message: string): ParamsIssue => ({
    step: step.name,
    kind: step.kind,
    path,
    message,
  });
  if (typeof schema === "function") {
    try {
      return { value: await schema(step.params) };
    } catch (error) {
      // every field a validator collected (checkFields), not only the first
      return { issues: fieldIssues(error).map((i) => issue(i.path, i.message)) };
    }
  }
  const result = await schema["~standard"].validate(step.params);
  if (!result.issues) return { value: result.value };
  return {
    issues: result.issues.map((i) =>
      issue((i.path ?? []).map((p) => String(typeof p === "object" ? p.key : p)).join("."), i.message),
    ),
  };
}

/** Runs a params-like check (Standard Schema or function) on a value; returns it or throws its issues. */
export async function checkWith(schema: ParamsSchema<unknown, unknown>, value: unknown): Promise<unknown> {
  if (typeof schema === "function") return schema(value);
  const result = await schema["~standard"].validate(value);
  if (!result.issues) return result.value;
  throw new ParamsFieldError(fieldIssues({ issues: result.issues }));
}

/**
 * Validates every step, then runs its kind's preflight; throws one ParamsError listing every issue,
 * naming step and field.
 */
export async function validateAll(steps: readonly Step[], context: { atom: string; host?: string }) {
  const values: unknown[] = [];
  const issues: ParamsIssue[] = [];
  // A refusal quotes what it refuses (a url holding a token, a preflight naming the credential it
  // tried): every step's secrets, as given and as validated, are masked in the messages.
  const redactor = new Redactor();
  const secretPaths = (step: Step) => [...(step.definition.secret ?? []), ...(step.options.secret ?? [])];
  for (const step of steps) redactor.add(step.params, secretPaths(step));
  for (const step of steps) {
    const r = await validateParams(step);
    if (r.issues) {
      issues.push(...r.issues);
      continue;
    }
    redactor.add(r.value, secretPaths(step));
    values.push(r.value);
    if (!step.definition.preflight) continue;
    try {
      await step.definition.preflight(r.value);
    } catch (error) {
      for (const i of fieldIssues(error)) issues.push({ step: step.name, kind: step.kind, ...i });
    }
  }
  if (issues.length) {
    for (const i of issues) i.message = redactor.text(i.message);
    const lines = issues.map(
      (i) => `step "${i.step}" (${i.kind}) ${i.path ? `field "${i.path}"` : "params"}: ${i.message}`,
    );
    throw new ParamsError(`invalid params, nothing was run:\n  - ${lines.join("\n  - ")}`, issues, {
      atom: context.atom,
      host: context.host,
      step: issues[0]?.step,
      phase: "validate",
      hint: "fix the params named above in the deploy file",
    });
  }
  return values;
}
