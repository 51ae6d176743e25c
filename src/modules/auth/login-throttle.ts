/**
 * Brute-force protection for sign-in. Failed attempts are counted per account (`email:…`) and per client address
 * (`address:…`); past its free allowance (5 for an account; 50 for an address, which many users may share behind
 * a proxy) each further failure locks that key for twice as long as the previous one (1 s, 2 s, 4 s … up to
 * 15 min), and a locked key is refused without checking the password: guessing slows down exponentially, while a
 * user who mistypes a few times never notices. A success clears the account's count; a key with no failure for
 * twice the longest lock starts over.
 *
 * The counts are rows of `login_failures` in PostgreSQL, so every instance counts the same failures (an attacker
 * spreading guesses over N instances gets one allowance, not N) and decides by PostgreSQL's clock. Keys are stored
 * as their SHA-256: the table holds no email or address. Each failure is one upsert that counts and locks at once
 * (concurrent failures of a key queue on its row), each sign-in one index probe before the password is checked.
 */
import { createHash } from "node:crypto";
import type pg from "pg";

const FREE_FAILURES = { account: 5, address: 50 };
const MAX_LOCK_MS = 15 * 60 * 1000;
/** A key whose last failure is older than this starts over (its row is pruned). */
const STALE_MS = 2 * MAX_LOCK_MS;
/** How often an instance deletes stale rows (on a failure, at most this often). */
const PRUNE_EVERY_MS = 60_000;

function keyHash(key: string): Buffer {
  return createHash("sha256").update(key).digest();
}

/**
 * Counts one failure of each key: a fresh or stale key starts at 1; a key past its allowance is locked for
 * 2^(failures beyond the allowance − 1) seconds, capped (the exponent too, so that no count overflows). The end of a
 * lock is truncated to the column's milliseconds: rounded, it could be up to half a millisecond later than computed,
 * and a 1 s lock would read as "retry in 2 s".
 */
const FAILED_SQL = `
  INSERT INTO login_failures AS f (key_hash, failures, allowance, locked_until, last_failed_at)
  SELECT k.hash, 1, k.allowance, NULL, now() FROM unnest($1::bytea[], $2::int[]) AS k(hash, allowance)
  ON CONFLICT (key_hash) DO UPDATE SET
    failures = CASE WHEN f.last_failed_at < now() - $3 * interval '1 millisecond' THEN 1 ELSE f.failures + 1 END,
    locked_until = CASE
      WHEN f.last_failed_at < now() - $3 * interval '1 millisecond' THEN NULL
      WHEN f.failures + 1 > f.allowance
        THEN date_trunc('milliseconds', now() + least(1000 * power(2, least(f.failures - f.allowance, 30)), $4) * interval '1 millisecond')
      ELSE f.locked_until END,
    last_failed_at = now()`;

export function createLoginThrottle(pool: pg.Pool) {
  let prunedAt = 0;

  return {
    /** Seconds until every one of `keys` may try again (0: now). */
    async retryAfterSeconds(keys: string[]): Promise<number> {
      const { rows } = await pool.query<{ wait: number }>(
        `SELECT coalesce(ceil(extract(epoch FROM max(locked_until) - now())), 0)::int AS wait
         FROM login_failures WHERE key_hash = ANY($1::bytea[]) AND locked_until > now()`,
        [keys.map(keyHash)],
      );
      return rows[0]!.wait;
    },

    async failed(keys: string[]): Promise<void> {
      const allowances = keys.map((key) => (key.startsWith("address:") ? FREE_FAILURES.address : FREE_FAILURES.account));
      await pool.query(FAILED_SQL, [keys.map(keyHash), allowances, STALE_MS, MAX_LOCK_MS]);
      if (Date.now() - prunedAt > PRUNE_EVERY_MS) {
        prunedAt = Date.now();
        await pool.query("DELETE FROM login_failures WHERE last_failed_at < now() - $1 * interval '1 millisecond'", [STALE_MS]);
      }
    },

    async succeeded(key: string): Promise<void> {
      await pool.query("DELETE FROM login_failures WHERE key_hash = $1", [keyHash(key)]);
    },
  };
}

export type LoginThrottle = ReturnType<typeof createLoginThrottle>;
