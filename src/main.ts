/** Process entry: configuration → app → listen; graceful shutdown on SIGTERM and SIGINT. */
import { startApp } from "./app.js";
import { loadConfig } from "./config.js";

const app = await startApp(loadConfig());
app.container.logger.info({ url: app.url, embeddedDatabase: !process.env.DATABASE_URL }, `recon is ready at ${app.url}`);

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    app.container.logger.info({ signal }, "shutting down: finishing in-flight requests");
    app.close().then(
      () => process.exit(0),
      (error) => {
        app.container.logger.error({ err: error }, "error during shutdown");
        process.exit(1);
      },
    );
  });
}
