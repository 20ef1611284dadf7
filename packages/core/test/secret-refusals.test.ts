import { describe, expect, it } from "vitest";
import { atom, defineStep, plan, run } from "../src/index";
import { tempDir, testHost } from "./_helpers";

// A refusal before a run quotes what it refuses. When that holds a secret (a url with a token in it, a
// preflight naming the credential it tried), the message that reaches the user must not.
const login = defineStep({
  kind: "test.login",
  params: (p: { user: string; token: string; url: string }) => {
    if (!p.url.startsWith("https://"))
      throw Object.assign(new Error(`expected an https url, found ${p.url}`), { path: "url" });
    return p;
  },
  preflight: (p) => {
    if (p.user === "nobody") throw new Error(`the auth server refused ${p.user} with token ${p.token}`);
  },
  secret: ["token"],
  observe: async () => null,
  apply: async () => {},
  undo: async () => {},
});

const TOKEN = "tok-9f8e7d6c5b";

describe("params and preflight refusals mask secrets", () => {
  for (const [what, params, expected] of [
    [
      "a params validator quoting a field that holds a secret",
      { user: "deploy", token: TOKEN, url: `http://deploy:${TOKEN}@auth.example` },
      /field "url": expected an https url, found http:\/\/deploy:\*\*\*@auth.example/,
    ],
    [
      "a preflight naming the secret it tried",
      { user: "nobody", token: TOKEN, url: "https://auth.example" },
      /the auth server refused nobody with token \*\*\*/,
    ],
  ] as const) {
    it(`${what}: run and plan refuse without printing it`, async () => {
      const { dir, cleanup } = await tempDir();
      try {
        // another step's secret counts too: a message may quote any value of the atom
        const a = atom("a", {
          steps: [
            login({ ...params }, { name: "login" }),
            login(
              { user: "x", token: "other-secret-42", url: "https://other-secret-42.example" },
              { name: "b" },
            ),
          ],
        });
        for (const attempt of [
          () => run(a, { host: testHost(dir) }),
          () => plan(a, { host: testHost(dir) }),
        ]) {
          const e = (await attempt().catch((x: unknown) => x)) as Error & { code?: string; issues?: unknown };
          expect(e.code).toBe("ATOM_PARAMS_INVALID");
          expect(e.message).toMatch(expected);
          expect(JSON.stringify({ m: e.message, i: e.issues })).not.toContain(TOKEN);
        }
      } finally {
        await cleanup();
      }
    });
  }
});
