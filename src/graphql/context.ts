/** What every resolver receives: the viewer, the services, and this request's DataLoaders. */
import type { Viewer } from "../auth/policy.js";
import type { Services } from "../container.js";
import type { Loaders } from "./loaders.js";
import type { CacheNote } from "./response-cache-plugin.js";

export interface GraphQLContext {
  /** The signed-in, active user, or null for an anonymous request. */
  viewer: Viewer | null;
  services: Services;
  loaders: Loaders;
  requestId: string;
  /** The client's IP address as the socket sees it (sign-in throttling). */
  clientAddress?: string | null;
  /** Where the response-cache plugin notes whether this answer may be cached. */
  cacheNote?: CacheNote;
  /**
   * A multipart upload's `Prefer: respond-async` (RFC 7240): `requested` by the client, with its `wait` as
   * `answerBy` (ms since the epoch); `applied` set by the operation that answered before its work was over, for the
   * route to send `Preference-Applied`.
   */
  respondAsync?: { requested: boolean; applied: boolean; answerBy?: number };
}
