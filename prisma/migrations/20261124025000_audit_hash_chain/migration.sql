-- A tamper-evident audit trail. Every audit event gets its place in one chain (seq 1, 2, ... without gaps) and
-- hash = sha256(previous hash || canonical text of the event), the first event's previous hash being 64 zeros.
-- Changing, deleting or reordering an event afterwards breaks the chain at that event (verifyAuditChain finds it).
--
-- How concurrent appends stay one linear chain: a BEFORE INSERT trigger locks the single row of audit_chain_head
-- (SELECT ... FOR UPDATE), computes the event's seq and hash from it and moves it on. The row lock is held until
-- the appending transaction ends, so the next appender waits and then reads the committed head (READ COMMITTED
-- takes a new snapshot for each statement of the trigger). That is simpler than a deferred trigger at commit, which
-- would have to UPDATE the already inserted row (append-only forbids it), and unlike an advisory lock plus max(seq)
-- it also remembers where the chain ends, so deleting its last events is noticed. The cost: transactions that
-- record an event are serialized from that insert to their commit (services record it as their last write).
-- Doing it in the database means no writer (Prisma, raw SQL, a future service) can append outside the chain.
--
-- user_id loses its foreign key: ON DELETE SET NULL rewrote events of a deleted user (an UPDATE, which would break
-- their hashes). The id stays as recorded, like project_id, and the actor of such an event reads as null.
--
-- Function bodies are E'' strings with \073 for semicolons: the migration runner splits scripts on every
-- semicolon, even inside dollar quotes and comments.

-- DropForeignKey
ALTER TABLE "audit_events" DROP CONSTRAINT "audit_events_user_id_fkey";

-- AlterTable
ALTER TABLE "audit_events" ADD COLUMN     "reason" TEXT,
ADD COLUMN     "seq" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "hash" TEXT NOT NULL DEFAULT '';

-- CreateTable
CREATE TABLE "audit_chain_head" (
    "id" INTEGER NOT NULL,
    "seq" BIGINT NOT NULL,
    "hash" TEXT NOT NULL,

    CONSTRAINT "audit_chain_head_pkey" PRIMARY KEY ("id")
);

-- The canonical text of an event: a JSON array of its fields in a fixed order, produced by jsonb (whose text form
-- of a value is always the same: object keys sorted, one spacing), the time as ISO 8601 UTC with milliseconds.
-- The verifier (src/modules/audit/audit-chain.ts) hashes this same text, so the serialization lives here only.
CREATE FUNCTION "audit_event_canonical"(e "audit_events") RETURNS text LANGUAGE sql STABLE AS E'SELECT jsonb_build_array(e.seq, e.id, to_char(e.created_at AT TIME ZONE ''UTC'', ''YYYY-MM-DD"T"HH24:MI:SS.MS"Z"''), e.user_id, e.project_id, e.action, e.resource_type, e.resource_id, e.before, e.after, e.reason, e.request_id)::text';

-- Existing events are chained in (created_at, id) order: first their places, then their hashes, each from the one
-- before (a recursive walk along seq).
UPDATE "audit_events" e SET "seq" = o.n FROM (SELECT "id", row_number() OVER (ORDER BY "created_at", "id") AS n FROM "audit_events") o WHERE e."id" = o."id";

-- CreateIndex
CREATE UNIQUE INDEX "audit_events_seq_key" ON "audit_events"("seq");

WITH RECURSIVE chain(seq, hash) AS (
    SELECT 0::bigint, repeat('0', 64)
  UNION ALL
    SELECT e."seq", encode(sha256(convert_to(chain.hash || "audit_event_canonical"(e), 'UTF8')), 'hex')
    FROM chain JOIN "audit_events" e ON e."seq" = chain.seq + 1
)
UPDATE "audit_events" e SET "hash" = chain.hash FROM chain WHERE e."seq" = chain.seq AND chain.seq > 0;

INSERT INTO "audit_chain_head" ("id", "seq", "hash")
SELECT 1, coalesce(max("seq"), 0), coalesce((SELECT "hash" FROM "audit_events" ORDER BY "seq" DESC LIMIT 1), repeat('0', 64)) FROM "audit_events";

-- Appends an event to the chain (see the top of this file for why a lock on the head row). Whatever seq and hash
-- the writer sent are overwritten.
CREATE FUNCTION "audit_events_chain"() RETURNS trigger LANGUAGE plpgsql AS E'DECLARE head_seq bigint\073 head_hash text\073 BEGIN SELECT h."seq", h."hash" INTO head_seq, head_hash FROM "audit_chain_head" h WHERE h."id" = 1 FOR UPDATE\073 IF NOT FOUND THEN RAISE EXCEPTION ''audit_chain_head has no row 1: the audit chain cannot be extended''\073 END IF\073 NEW."seq" := head_seq + 1\073 NEW."hash" := encode(sha256(convert_to(head_hash || "audit_event_canonical"(NEW), ''UTF8'')), ''hex'')\073 UPDATE "audit_chain_head" SET "seq" = NEW."seq", "hash" = NEW."hash" WHERE "id" = 1\073 RETURN NEW\073 END';

-- CreateTrigger
CREATE TRIGGER "audit_events_chain" BEFORE INSERT ON "audit_events" FOR EACH ROW EXECUTE FUNCTION "audit_events_chain"();

-- Append-only: no event is ever changed or removed (a superuser can still disable the trigger: the chain is what
-- makes that visible).
CREATE FUNCTION "audit_events_refuse_change"() RETURNS trigger LANGUAGE plpgsql AS E'BEGIN RAISE EXCEPTION ''audit_events is append-only: % refused'', TG_OP USING ERRCODE = ''insufficient_privilege''\073 END';

-- CreateTrigger
CREATE TRIGGER "audit_events_append_only" BEFORE UPDATE OR DELETE ON "audit_events" FOR EACH ROW EXECUTE FUNCTION "audit_events_refuse_change"();

-- CreateTrigger
CREATE TRIGGER "audit_events_no_truncate" BEFORE TRUNCATE ON "audit_events" FOR EACH STATEMENT EXECUTE FUNCTION "audit_events_refuse_change"();
