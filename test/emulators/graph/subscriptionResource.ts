/**
 * The `resource` of a message subscription, as Graph accepts it: `users/{id|upn}/messages` or
 * `users/{id|upn}/mailFolders('{folder}')/messages`, with or without a leading `/`, any segment casing, and the key
 * (`mailFolders('inbox')`) or slash (`mailFolders/inbox`) form. `me/...` needs a signed-in user, which app-only
 * tokens lack.
 */
import { GraphError } from './graphResponse';
import { splitPath } from './router';

/** What a message subscription watches: one user's messages, in one folder or anywhere in the mailbox. */
export interface MessageResource {
  /** The user as written (id, UPN or mail). */
  user: string;
  /** The folder as written (well-known name or id); undefined for the whole mailbox. */
  folder?: string;
}

// Graph's answer to `me` with an app-only token, on every API.
const ME_WITH_APP_TOKEN = '/me request is only valid with delegated authentication flow.';

/** Parses `resource`; throws Graph's 400 for anything that is not a message collection the emulator knows. */
export function parseMessageResource(resource: string): MessageResource {
  if (resource.includes('?')) {
    // Graph accepts `$filter` on Outlook resources for rich notifications; the emulator does not implement them.
    throw new GraphError(501, 'NotImplemented', 'The Graph emulator does not implement query options on resources.');
  }
  const segments = splitPath(resource.trim());
  const lower = segments?.map((s) => s.toLowerCase());
  if (!segments || !lower || segments.length === 0) throw unsupported(resource);
  if (lower[0] === 'me') throw new GraphError(400, 'BadRequest', ME_WITH_APP_TOKEN);
  if (lower[0] !== 'users' || !segments[1]) throw unsupported(resource);
  if (segments.length === 3 && lower[2] === 'messages') return { user: segments[1] };
  if (segments.length === 5 && lower[2] === 'mailfolders' && segments[3] !== '' && lower[4] === 'messages') {
    return { user: segments[1], folder: segments[3] };
  }
  throw unsupported(resource);
}

// Strict reading: Graph rejects unknown resource paths with 400; the exact text varies by workload and is not
// documented, so the message names the resource.
function unsupported(resource: string): GraphError {
  return new GraphError(
    400,
    'InvalidRequest',
    `The resource '${resource}' is not supported for change notifications by the Graph emulator ` +
      "(use users/{id}/messages or users/{id}/mailFolders('{folder}')/messages).",
  );
}
