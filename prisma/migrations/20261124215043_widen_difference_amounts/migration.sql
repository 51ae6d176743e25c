-- A group's amount_delta and an exception's amount (and resolution_amount) are differences or sums of records,
-- which may need more digits than one record's NUMERIC(20,4): 24 digits, 4 of them decimals. Widening a numeric's
-- precision at the same scale changes no stored value, so PostgreSQL rewrites neither table.
-- AlterTable
ALTER TABLE "match_groups" ALTER COLUMN "amount_delta" SET DATA TYPE DECIMAL(24,4);

-- AlterTable
ALTER TABLE "exceptions" ALTER COLUMN "amount" SET DATA TYPE DECIMAL(24,4),
ALTER COLUMN "resolution_amount" SET DATA TYPE DECIMAL(24,4);
