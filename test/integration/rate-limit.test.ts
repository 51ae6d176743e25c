/**
 * The per-viewer rate limit over real HTTP: a viewer gets its burst, then 429 with Retry-After and a
 * RATE_LIMITED error — cache hits included — while another viewer is unaffected; other routes are not limited.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestApp, type TestApp, type TestUser } from "../helpers/app.js";

let t: TestApp;
let first: TestUser;
let second: TestUser;

beforeAll(async () => {
  // One request a second after a burst of 5: the burst is spent in a few milliseconds, far faster than a refill.
  t = await startTestApp({ RECON_RATE_LIMIT_PER_SECOND: "1", RECON_RATE_LIMIT_BURST: "5" });
  first = await t.createUser("ANALYST");
  second = await t.createUser("ANALYST");
});
afterAll(() => t?.close());

it("grants a viewer its burst, then answers 429 with Retry-After (cache hits too), and leaves other viewers alone", async () => {
  const started = Date.now();
  const caches: (string | null)[] = [];
  let refused: Awaited<ReturnType<typeof t.graphql>> | undefined;
  for (let i = 0; i < 50 && !refused; i++) {
    const response = await t.graphql("{ me { id } }", {}, first.token);
    if (response.status === 429) refused = response;
    else caches.push(response.headers.get("x-cache"));
  }
  // The burst, plus whatever the refill (1 a second) added while the requests ran.
  const granted = caches.length;
  expect(granted).toBeGreaterThanOrEqual(5);
  expect(granted).toBeLessThanOrEqual(5 + Math.floor((Date.now() - started) / 1000));
  expect(caches).toContain("HIT"); // hits were served, and then limited like the rest
  expect(refused!.headers.get("retry-after")).toBe("1");
  expect(refused!.errors?.[0].extensions).toMatchObject({ code: "RATE_LIMITED", retryAfterSeconds: 1 });
  expect((await t.graphql("{ me { id } }", {}, second.token)).status).toBe(200);
  expect((await fetch(t.url.replace("/graphql", "/healthz"))).status).toBe(200);
  const metrics = await (await fetch(t.url.replace("/graphql", "/metrics"))).text();
  expect(metrics).toMatch(/^recon_rate_limited_total [1-9]/m);
});
