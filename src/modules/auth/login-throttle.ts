/**
 * Brute-force protection for sign-in. Failed attempts are counted per account (`email:…`) and per client address
 * (`address:…`); past its free allowance (5 for an account; 50 for an address, which many users may share behind
 * a proxy) each further failure locks that key for twice as long as the previous one (1 s, 2 s, 4 s … up to
 * 15 min), and a locked key is refused without checking the password: guessing slows down exponentially, while a
 * user who mistypes a few times never notices. A success clears the account's count.
 *
 * Counts live in this process (bounded LRU): with several instances an attacker gets each instance's allowance.
 */
import { LRUCache } from "lru-cache";

const FREE_FAILURES = { account: 5, address: 50 };
const MAX_LOCK_MS = 15 * 60 * 1000;

interface Failures {
  count: number;
  lockedUntil: number;
}

export function createLoginThrottle(now: () => number = Date.now) {
  const failures = new LRUCache<string, Failures>({ max: 100_000, ttl: MAX_LOCK_MS * 2 });

  return {
    /** Seconds until every one of `keys` may try again (0: now). */
    retryAfterSeconds(keys: string[]): number {
      const until = Math.max(0, ...keys.map((key) => failures.get(key)?.lockedUntil ?? 0));
      return Math.max(0, Math.ceil((until - now()) / 1000));
    },

    failed(keys: string[]): void {
      for (const key of keys) {
        const entry = failures.get(key) ?? { count: 0, lockedUntil: 0 };
        entry.count += 1;
        const free = key.startsWith("address:") ? FREE_FAILURES.address : FREE_FAILURES.account;
        if (entry.count > free) entry.lockedUntil = now() + Math.min(1000 * 2 ** (entry.count - free - 1), MAX_LOCK_MS);
        failures.set(key, entry);
      }
    },

    succeeded(key: string): void {
      failures.delete(key);
    },
  };
}

export type LoginThrottle = ReturnType<typeof createLoginThrottle>;
