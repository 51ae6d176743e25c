/**
 * The Upload scalar of the GraphQL multipart request spec. Its values are only ever placed by the multipart
 * parser (src/http/multipart.ts), as `Upload` instances in the variables; resolvers receive the file's promise.
 */
import { GraphQLError, GraphQLScalarType } from "graphql";
import { Upload, type FileUpload } from "../http/multipart.js";

export type { FileUpload };

const NOT_MULTIPART =
  "Upload must be sent as a multipart request (GraphQL multipart request spec), with the apollo-require-preflight header";

export const UploadScalar = new GraphQLScalarType<Promise<FileUpload>, never>({
  name: "Upload",
  parseValue(value) {
    if (value instanceof Upload) return value.promise;
    throw new GraphQLError(NOT_MULTIPART, { extensions: { code: "BAD_USER_INPUT" } });
  },
  parseLiteral() {
    throw new GraphQLError(NOT_MULTIPART, { extensions: { code: "BAD_USER_INPUT" } });
  },
  serialize() {
    throw new GraphQLError("Upload is an input-only scalar");
  },
});
