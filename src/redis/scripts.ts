/**
 * Lua scripts and bounded waits on a node-redis client, shared by the response cache's Redis tier and the
 * fleet-wide rate limit. A script runs by its SHA (EVALSHA) and is sent whole only when Redis does not know it
 * (first use, or after a restart emptied its script cache).
 */
import { createHash } from "node:crypto";

/** A Redis call that took longer than its caller may wait. */
export class RedisTimeoutError extends Error {}

/** The part of a node-redis client the runner needs. */
export interface CommandSender {
  sendCommand(args: string[]): Promise<unknown>;
}

export interface ScriptRunner {
  /** Runs `source` with `args` as ARGV (no KEYS), failing with RedisTimeoutError after the runner's timeout. */
  run<T>(source: string, args: (string | number)[]): Promise<T>;
  /** Waits for any Redis call at most the runner's timeout. */
  withTimeout<T>(promise: Promise<T>): Promise<T>;
}

export function createScriptRunner(client: CommandSender, timeoutMs: number): ScriptRunner {
  const shas = new Map<string, string>();

  function withTimeout<T>(promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout;
    return Promise.race([
      promise,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new RedisTimeoutError(`Redis did not answer within ${timeoutMs} ms`)), timeoutMs))),
    ]).finally(() => clearTimeout(timer));
  }

  return {
    withTimeout,
    async run<T>(source: string, args: (string | number)[]): Promise<T> {
      let sha = shas.get(source);
      if (!sha) shas.set(source, (sha = createHash("sha1").update(source).digest("hex")));
      const argv = args.map(String);
      try {
        return (await withTimeout(client.sendCommand(["EVALSHA", sha, "0", ...argv]))) as T;
      } catch (error) {
        if (!String((error as Error).message).includes("NOSCRIPT")) throw error;
        return (await withTimeout(client.sendCommand(["EVAL", source, "0", ...argv]))) as T;
      }
    },
  };
}
