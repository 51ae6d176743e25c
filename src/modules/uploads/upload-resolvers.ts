/** GraphQL resolvers for file uploads, previews and row issues. */
import { BadUserInputError } from "../../graphql/errors.js";
import { MAX_PAGE_SIZE, pageRequest, toConnection } from "../../graphql/pagination.js";
import type { Resolvers } from "../../graphql/resolver-types.js";
import type { IssuePosition } from "./upload-repository.js";

function issueCursor(position: IssuePosition): string {
  return Buffer.from(JSON.stringify([position.line, position.id])).toString("base64url");
}

function parseIssueCursor(cursor: string | null | undefined): IssuePosition | null {
  if (!cursor) return null;
  try {
    const [line, id] = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as [number, string];
    if (Number.isInteger(line) && /^\d+$/.test(id)) return { line, id };
  } catch {
    // fall through
  }
  throw new BadUserInputError("after", "is not a cursor from this list (use pageInfo.endCursor)");
}

export const uploadResolvers: Resolvers = {
  Query: {
    fileUpload: (_, { id }, ctx) => ctx.services.ingest.get(ctx.viewer, id),
  },
  Mutation: {
    uploadDataSourceFile: async (_, { dataSourceId, file, policy, force }, ctx) => {
      const upload = await file;
      return ctx.services.ingest.upload(ctx.viewer, { dataSourceId, fileName: upload.filename, policy, force }, upload.createReadStream());
    },
    previewDataSourceFile: async (_, { dataSourceId, file, columnMapping }, ctx) => {
      const upload = await file;
      return ctx.services.ingest.preview(ctx.viewer, { dataSourceId, columnMapping }, upload.createReadStream());
    },
  },
  DataSource: {
    // The data source was reached through a visible project, so its uploads are visible too.
    uploads: (source, args, ctx) => {
      const page = pageRequest(args);
      return ctx.repos.uploads
        .pageByDataSource(source.id, page)
        .then((rows) => toConnection(rows, page, () => ctx.repos.uploads.countByDataSource(source.id)));
    },
  },
  FileUpload: {
    dataSource: async (upload, _, ctx) => (await ctx.loaders.dataSourceById.load(upload.dataSourceId))!,
    uploadedBy: async (upload, _, ctx) => (await ctx.loaders.userById.load(upload.uploadedById))!,
    sizeBytes: (upload) => Number(upload.sizeBytes),
    bytesRead: (upload) => Number(upload.bytesRead),
    rowErrors: async (upload, args, ctx) => {
      const limit = args.first ?? 20;
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
        throw new BadUserInputError("first", `must be between 1 and ${MAX_PAGE_SIZE}`);
      }
      const after = parseIssueCursor(args.after);
      const severity = args.severity ?? null;
      const rows = await ctx.repos.uploads.issues(upload.id, severity, limit, after);
      const hasNextPage = rows.length > limit;
      const edges = rows.slice(0, limit).map((node) => ({ cursor: issueCursor(node), node: { ...node, id: BigInt(node.id) } }));
      return {
        edges,
        pageInfo: { hasNextPage, hasPreviousPage: after !== null, startCursor: edges[0]?.cursor ?? null, endCursor: edges.at(-1)?.cursor ?? null },
        totalCount: () => ctx.repos.uploads.countIssues(upload.id, severity),
      };
    },
  },
  FileUploadConnection: { totalCount: (connection) => connection.totalCount() },
  RowIssueConnection: { totalCount: (connection) => connection.totalCount() },
};
