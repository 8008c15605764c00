/**
 * The folders a watch covers: Graph's well-known folder names (kept lower-case, as the events name them) or folder
 * ids. Each folder has its own subscription and delta link; the Inbox alone is what a record from before folders
 * watched.
 */
import { z } from 'zod';

/** The folder a watch covers when the request names none, and the folder of every record from before folders. */
export const DEFAULT_FOLDER = 'inbox';
/** Folders one mailbox may watch at once: each costs a subscription (Graph allows 1,000 per mailbox, all apps). */
export const MAX_WATCHED_FOLDERS = 10;

/** Well-known folder names Graph accepts in place of a folder id (mailFolder resource), lower-case. */
const WELL_KNOWN_FOLDERS = new Set([
  'inbox',
  'sentitems',
  'archive',
  'drafts',
  'deleteditems',
  'junkemail',
  'outbox',
  'clutter',
  'conversationhistory',
  'scheduled',
]);

/**
 * Graph's folder ids are URL-safe base64 (`-` and `_` for `+` and `/`): no `/`, which would leave the resource path
 * `mailFolders('{id}')/messages`; no quote, which would end the key.
 */
const FOLDER_ID = /^[A-Za-z0-9_=+-]{16,512}$/;

/** The folder as stored and named in events: a well-known name lower-cased, an id as given. */
export function folderName(folder: string): string {
  return WELL_KNOWN_FOLDERS.has(folder.toLowerCase()) ? folder.toLowerCase() : folder;
}

/** One folder of a watch request. */
const folderSchema = z
  .string()
  .refine((f) => WELL_KNOWN_FOLDERS.has(f.toLowerCase()) || FOLDER_ID.test(f), {
    message: `is neither a well-known folder name (${[...WELL_KNOWN_FOLDERS].join(', ')}) nor a Graph folder id`,
  })
  .transform(folderName);

/** The `folders` member of a watch request: distinct folders, inbox when absent. */
export const watchFoldersSchema = z
  .array(folderSchema)
  .min(1)
  .max(MAX_WATCHED_FOLDERS)
  .refine((folders) => new Set(folders).size === folders.length, { message: 'names a folder twice' })
  .default([DEFAULT_FOLDER])
  .meta({
    description: `Folders to watch (default ["inbox"], at most ${MAX_WATCHED_FOLDERS}): well-known names (inbox, sentitems, archive, ...) or folder ids. Each has its own subscription and delta link; events name their folder.`,
  });

/** The Graph path segment of a folder's messages below the user: `mailFolders('{folder}')/messages`. */
export function folderMessagesPath(folder: string): string {
  return `mailFolders('${folder}')/messages`;
}
