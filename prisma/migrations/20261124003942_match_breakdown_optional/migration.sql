-- AlterTable
ALTER TABLE "match_groups" ALTER COLUMN "score_breakdown" DROP NOT NULL,
ALTER COLUMN "score_breakdown" DROP DEFAULT;
