/** Bearer access tokens: HS256 JWTs (jose) naming the user; the user is re-read on every request. */
import { SignJWT, jwtVerify } from "jose";

export interface TokenIssuer {
  issue(userId: string): Promise<{ token: string; expiresAt: Date }>;
  /** The user id in a valid token, or null for a missing, malformed, expired or forged one. */
  verify(token: string): Promise<string | null>;
}

const ISSUER = "recon";

export function createTokenIssuer(secret: string, ttlSeconds: number): TokenIssuer {
  const key = new TextEncoder().encode(secret);
  return {
    async issue(userId) {
      const expiresAt = new Date(Date.now() + ttlSeconds * 1000);
      const token = await new SignJWT({})
        .setProtectedHeader({ alg: "HS256" })
        .setSubject(userId)
        .setIssuer(ISSUER)
        .setIssuedAt()
        .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
        .sign(key);
      return { token, expiresAt };
    },
    async verify(token) {
      try {
        const { payload } = await jwtVerify(token, key, { issuer: ISSUER, algorithms: ["HS256"] });
        return typeof payload.sub === "string" ? payload.sub : null;
      } catch {
        return null;
      }
    },
  };
}
