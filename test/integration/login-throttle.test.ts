/**
 * The sign-in throttle against real PostgreSQL: its counts and locks live in `login_failures`. Time passing is
 * played by moving a key's stored times back (PostgreSQL's clock decides, as for every instance).
 */
import { createHash } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createLoginThrottle, type LoginThrottle } from "../../src/modules/auth/login-throttle.js";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";

let db: TestDatabase;
let pool: pg.Pool;
let throttle: LoginThrottle;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 2 });
});
beforeEach(async () => {
  await pool.query("TRUNCATE login_failures");
  throttle = createLoginThrottle(pool);
});
afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

/** Moves every stored time back by `minutes`, as if that much time had passed. */
async function elapse(minutes: number): Promise<void> {
  await pool.query(
    "UPDATE login_failures SET locked_until = locked_until - $1 * interval '1 minute', last_failed_at = last_failed_at - $1 * interval '1 minute'",
    [minutes],
  );
}

async function fail(keys: string[], times: number): Promise<void> {
  for (let i = 0; i < times; i++) await throttle.failed(keys);
}

describe("the sign-in throttle", () => {
  it("lets five failures pass, then locks for 1, 2, 4 … seconds, capped at 15 minutes", async () => {
    const keys = ["email:a@x"];
    await fail(keys, 5);
    expect(await throttle.retryAfterSeconds(keys)).toBe(0);
    await fail(keys, 1);
    expect(await throttle.retryAfterSeconds(keys)).toBe(1);
    await fail(keys, 1);
    expect(await throttle.retryAfterSeconds(keys)).toBe(2);
    await fail(keys, 1);
    expect(await throttle.retryAfterSeconds(keys)).toBe(4);
    await fail(keys, 60); // far past the cap: the exponent is capped too, nothing overflows
    expect(await throttle.retryAfterSeconds(keys)).toBe(15 * 60);
    await elapse(15);
    expect(await throttle.retryAfterSeconds(keys)).toBe(0);
  });

  it("counts accounts and addresses apart (an address, maybe a shared proxy, gets 50 free failures), and a success clears the account", async () => {
    await fail(["email:a@x", "address:1.2.3.4"], 6);
    expect(await throttle.retryAfterSeconds(["email:a@x"])).toBe(1);
    expect(await throttle.retryAfterSeconds(["email:b@x", "address:1.2.3.4"])).toBe(0);
    await fail(["address:1.2.3.4"], 45);
    expect(await throttle.retryAfterSeconds(["email:b@x", "address:1.2.3.4"])).toBe(1);
    await throttle.succeeded("email:a@x");
    expect(await throttle.retryAfterSeconds(["email:a@x"])).toBe(0);
    expect(await throttle.retryAfterSeconds(["address:1.2.3.4"])).toBe(1);
  });

  it("starts a key over after 30 quiet minutes, and prunes such keys", async () => {
    await fail(["email:a@x"], 8);
    await elapse(31);
    await fail(["email:a@x"], 1);
    expect(await throttle.retryAfterSeconds(["email:a@x"])).toBe(0);
    const { rows } = await pool.query("SELECT failures FROM login_failures");
    expect(rows).toEqual([{ failures: 1 }]);
    await elapse(31);
    // A new throttle (a restarted instance) prunes on its first failure.
    await createLoginThrottle(pool).failed(["email:b@x"]);
    expect((await pool.query("SELECT count(*)::int AS n FROM login_failures")).rows).toEqual([{ n: 1 }]);
  });

  it("counts concurrent failures of a key, each once, and stores no email or address", async () => {
    await Promise.all(Array.from({ length: 7 }, () => throttle.failed(["email:a@x", "address:10.0.0.1"])));
    const { rows } = await pool.query<{ key_hash: Buffer; failures: number }>("SELECT key_hash, failures FROM login_failures ORDER BY allowance");
    const sha = (key: string) => createHash("sha256").update(key).digest("hex");
    expect(rows.map((row) => [row.key_hash.toString("hex"), row.failures])).toEqual([
      [sha("email:a@x"), 7],
      [sha("address:10.0.0.1"), 7],
    ]);
    expect(await throttle.retryAfterSeconds(["email:a@x"])).toBe(2);
  });
});
