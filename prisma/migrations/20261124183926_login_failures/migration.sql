-- Failed sign-ins shared by every instance (login-throttle.ts): one row per hashed account or address key.

-- CreateTable
CREATE TABLE "login_failures" (
    "key_hash" BYTEA NOT NULL,
    "failures" INTEGER NOT NULL,
    "allowance" INTEGER NOT NULL,
    "locked_until" TIMESTAMPTZ(3),
    "last_failed_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "login_failures_pkey" PRIMARY KEY ("key_hash")
);

-- CreateIndex
CREATE INDEX "login_failures_last_failed_at_idx" ON "login_failures"("last_failed_at");
