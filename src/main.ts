/** Process entry: configuration → app → listen; graceful shutdown on SIGTERM and SIGINT. */
import { startApp } from "./app.js";
import { loadConfig } from "./config.js";

const app = await startApp(loadConfig());
const { logger, reconcileTask } = app.container;
logger.info({ url: app.url, embeddedDatabase: !process.env.DATABASE_URL }, `recon is ready at ${app.url}`);

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down: finishing in-flight requests, stopping running jobs");
    // Running jobs stop at once (recovery queues them again). One that cannot let go of its connections in time
    // (stuck in a statement) must not hold the process: exiting drops them and PostgreSQL rolls back, as after a
    // crash.
    void reconcileTask.interrupt().then((stopped) => {
      if (stopped) return;
      logger.error("running jobs did not stop in time: exiting (recovery queues them again)");
      process.exit(1);
    });
    app.close().then(
      () => process.exit(0),
      (error) => {
        logger.error({ err: error }, "error during shutdown");
        process.exit(1);
      },
    );
  });
}
