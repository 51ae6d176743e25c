/**
 * Signed, short-lived download links for exports: `/exports/job-results/<jobId>.csv?outcome=…&viewer=…&expires=…
 * &signature=…`. The signature is an HMAC-SHA256 over the job, the outcome filter, the viewer it was issued to and
 * its expiry, keyed by a key derived from the server's JWT secret (so every instance sharing RECON_JWT_SECRET
 * accepts the links of the others, and a link can never pass for an access token or the other way round).
 * A valid signature only says who the link was issued to: the route still checks that viewer's access now.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** The path of the download route; its group is the job's id. */
export const EXPORT_ROUTE = /^\/exports\/job-results\/([^/]+)\.csv$/;

/** What a link grants: one viewer, one job, one outcome filter, until a moment. */
export interface ExportClaims {
  viewerId: string;
  jobId: string;
  outcome: string;
  expiresAt: Date;
}

/** Why a link was refused: its parameters are missing or malformed, its signature is wrong, or it has expired. */
export class ExportLinkError extends Error {
  constructor(
    message: string,
    readonly kind: "malformed" | "forged" | "expired",
  ) {
    super(message);
  }
}

export function createExportLinks(secret: string, ttlSeconds: number) {
  // A key of its own (domain separation): the JWT secret itself signs access tokens.
  const key = createHmac("sha256", secret).update("recon export links v1").digest();
  const signatureOf = (claims: { viewerId: string; jobId: string; outcome: string; expires: number }) =>
    createHmac("sha256", key).update(`${claims.jobId}\n${claims.outcome}\n${claims.viewerId}\n${claims.expires}`).digest("base64url");

  return {
    ttlSeconds,

    /** The link's path and query (relative to the server's origin), valid for `ttlSeconds` unless told otherwise. */
    sign(claims: Omit<ExportClaims, "expiresAt"> & { expiresAt?: Date }): { url: string; expiresAt: Date } {
      const expires = Math.floor((claims.expiresAt?.getTime() ?? Date.now() + ttlSeconds * 1000) / 1000);
      const signature = signatureOf({ ...claims, expires });
      const query = new URLSearchParams({ outcome: claims.outcome, viewer: claims.viewerId, expires: String(expires), signature });
      return { url: `/exports/job-results/${claims.jobId}.csv?${query}`, expiresAt: new Date(expires * 1000) };
    },

    /** The claims of a link whose signature holds and which has not expired; ExportLinkError otherwise. */
    verify(jobId: string, search: URLSearchParams, now = Date.now()): ExportClaims {
      const outcome = search.get("outcome");
      const viewerId = search.get("viewer");
      const expiresText = search.get("expires");
      const signature = search.get("signature");
      for (const [name, value] of [["outcome", outcome], ["viewer", viewerId], ["expires", expiresText], ["signature", signature]] as const) {
        if (!value) throw new ExportLinkError(`The export link has no ${name} parameter: ask for a new link (exportJobResults)`, "malformed");
      }
      const expires = Number(expiresText);
      if (!/^\d{1,12}$/.test(expiresText!)) throw new ExportLinkError("The export link's expires parameter is not a time: ask for a new link (exportJobResults)", "malformed");
      const expected = Buffer.from(signatureOf({ jobId, outcome: outcome!, viewerId: viewerId!, expires }));
      const given = Buffer.from(signature!);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        throw new ExportLinkError("The export link's signature does not match it (changed or forged): ask for a new link (exportJobResults)", "forged");
      }
      if (expires * 1000 <= now) {
        throw new ExportLinkError(`The export link expired at ${new Date(expires * 1000).toISOString()}: ask for a new link (exportJobResults)`, "expired");
      }
      return { viewerId: viewerId!, jobId, outcome: outcome!, expiresAt: new Date(expires * 1000) };
    },
  };
}

export type ExportLinks = ReturnType<typeof createExportLinks>;
