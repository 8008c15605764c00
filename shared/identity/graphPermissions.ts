/**
 * The Microsoft Graph application permissions the gateway asks for, by what it does with them. One list, so that
 * the send path's check, the mailbox API's check and `/api/diagnostics` can never disagree on a name.
 */

/** Sending as a mailbox (`sendMail`, and `send` of a draft). */
export const SEND_PERMISSION = 'Mail.Send';
/** Writing to a mailbox: drafts with large attachments, and the outbox's lookup of an interrupted attempt. */
export const MAILBOX_WRITE_PERMISSION = 'Mail.ReadWrite';
/** Resolving a mailbox by address. */
export const USER_READ_PERMISSION = 'User.Read.All';

/** The application permission watching needs (Graph also accepts Mail.Read or Mail.ReadWrite, which grant more). */
export const WATCH_PERMISSION = 'Mail.ReadBasic.All';
/** Permissions any of which lets the gateway read message metadata and delta. */
export const WATCH_PERMISSIONS_ACCEPTED: readonly string[] = [WATCH_PERMISSION, 'Mail.Read', MAILBOX_WRITE_PERMISSION];

/** Reading message bodies, attachments and MIME (the message API): Mail.ReadBasic.All excludes them. */
export const READ_PERMISSION = 'Mail.Read';
/** Permissions any of which lets the gateway read whole messages. */
export const READ_PERMISSIONS_ACCEPTED: readonly string[] = [READ_PERMISSION, MAILBOX_WRITE_PERMISSION];

/**
 * Graph application permissions the gateway uses: send; large attachments, watching and the outbox's Outbox / Sent
 * Items lookup of an interrupted attempt (Mail.ReadWrite includes the Mail.ReadBasic.All those reads need); mailbox
 * lookup.
 */
export const REQUIRED_GRAPH_PERMISSIONS = [SEND_PERMISSION, MAILBOX_WRITE_PERMISSION, USER_READ_PERMISSION] as const;
