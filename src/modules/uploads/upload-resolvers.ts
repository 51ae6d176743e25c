/** GraphQL resolvers for file uploads, previews and row issues. */
import type { Resolvers } from "../../graphql/resolver-types.js";

export const uploadResolvers: Resolvers = {
  Query: {
    fileUpload: (_, { id }, ctx) => ctx.services.ingest.get(ctx.viewer, id),
  },
  Mutation: {
    uploadDataSourceFile: async (_, { dataSourceId, file, policy, force }, ctx) => {
      const upload = await file;
      const respondAsync = ctx.respondAsync?.requested === true;
      const options = { respondAsync, answerBy: ctx.respondAsync?.answerBy };
      const result = await ctx.services.ingest.upload(ctx.viewer, { dataSourceId, fileName: upload.filename, policy, force }, upload.createReadStream(), options);
      // Answered before the ingest was over: the route tells the client with Preference-Applied.
      if (respondAsync && result.status === "PROCESSING") ctx.respondAsync!.applied = true;
      return result;
    },
    previewDataSourceFile: async (_, { dataSourceId, file, columnMapping }, ctx) => {
      const upload = await file;
      return ctx.services.ingest.preview(ctx.viewer, { dataSourceId, columnMapping }, upload.createReadStream());
    },
  },
  DataSource: {
    uploads: (source, args, ctx) => ctx.services.ingest.uploadsOf(source, args),
  },
  FileUpload: {
    dataSource: async (upload, _, ctx) => (await ctx.loaders.dataSourceById.load(upload.dataSourceId))!,
    uploadedBy: async (upload, _, ctx) => (await ctx.loaders.userById.load(upload.uploadedById))!,
    sizeBytes: (upload) => Number(upload.sizeBytes),
    bytesRead: (upload) => Number(upload.bytesRead),
    rowErrors: (upload, args, ctx) => ctx.services.ingest.rowIssues(upload, args),
  },
  FileUploadConnection: { totalCount: (connection) => connection.totalCount() },
  RowIssueConnection: { totalCount: (connection) => connection.totalCount() },
};
