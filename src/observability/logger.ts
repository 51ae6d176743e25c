/** Structured JSON logging (pino). Secrets are redacted by path wherever they might appear. */
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: "recon" },
    redact: {
      paths: ["password", "*.password", "token", "*.token", "authorization", "*.authorization", "headers.authorization"],
      censor: "[redacted]",
    },
  });
}
