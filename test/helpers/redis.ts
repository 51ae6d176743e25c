/**
 * A Redis server of the test's own (Debian's `redis-server`, on a free loopback port, nothing persisted), so a
 * test may kill and restart it without disturbing anything else.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { freePort } from "./ports.js";

export interface TestRedis {
  url: string;
  /** Kills the server (SIGKILL: no goodbye to clients) and waits until it has exited. */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
}

export async function startTestRedis(): Promise<TestRedis> {
  const port = await freePort();
  let child: ChildProcess | null = null;

  async function start() {
    const proc = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = proc;
    let output = "";
    await new Promise<void>((resolve, reject) => {
      proc.once("error", (error) => reject(new Error(`cannot run redis-server (install Debian's redis-server): ${error.message}`)));
      proc.once("exit", (code) => reject(new Error(`redis-server exited with ${code}: ${output}`)));
      proc.stdout!.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("Ready to accept connections")) resolve();
      });
    });
    proc.removeAllListeners("exit");
  }

  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    start,
    async kill() {
      if (!child || child.exitCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGKILL");
      await exited;
      child = null;
    },
  };
}
