/**
 * The Microsoft Graph application permissions the gateway asks for, by what it does with them. One list, so that
 * the send path's check, the mailbox API's check, `/api/diagnostics` and the infra's grants can never disagree on a
 * name.
 */

/** Sending as a mailbox (`sendMail`, and `send` of a draft). */
export const SEND_PERMISSION = 'Mail.Send';
/** Writing to a mailbox: drafts with large attachments, and the outbox's lookup of an interrupted attempt. */
export const MAILBOX_WRITE_PERMISSION = 'Mail.ReadWrite';
/** Resolving a mailbox by address. */
export const USER_READ_PERMISSION = 'User.Read.All';

/** The application permission watching needs: the least privileged for subscriptions, message metadata and delta. */
export const WATCH_PERMISSION = 'Mail.ReadBasic.All';
/** Reading message bodies, attachments and MIME (the message API, content in events): Mail.ReadBasic.All excludes them. */
export const READ_PERMISSION = 'Mail.Read';

/**
 * Permissions any of which lets the gateway watch. A subscription needs a read scope on the resource
 * (api-reference/includes/outlook-subscription-notes.md: "requires a read scope"): Mail.ReadBasic.All or Mail.Read;
 * Mail.ReadWrite alone is not one (the Graph emulator refuses it as Graph does).
 */
export const WATCH_PERMISSIONS_ACCEPTED: readonly string[] = [WATCH_PERMISSION, READ_PERMISSION];
/** Permissions any of which lets the gateway list messages and read their metadata (not a subscription's rule). */
export const LIST_PERMISSIONS_ACCEPTED: readonly string[] = [
  WATCH_PERMISSION,
  READ_PERMISSION,
  MAILBOX_WRITE_PERMISSION,
];
/** Permissions any of which lets the gateway read whole messages. */
export const READ_PERMISSIONS_ACCEPTED: readonly string[] = [READ_PERMISSION, MAILBOX_WRITE_PERMISSION];

/**
 * Graph application permissions the gateway uses: send; large attachments and the outbox's Outbox / Sent Items lookup
 * of an interrupted attempt; mailbox lookup.
 */
export const REQUIRED_GRAPH_PERMISSIONS = [SEND_PERMISSION, MAILBOX_WRITE_PERMISSION, USER_READ_PERMISSION] as const;

/** A feature of the gateway and the Graph application permission it needs. */
export interface FeaturePermission {
  /** The feature's name in `/api/diagnostics`. */
  readonly feature: 'send' | 'largeAttachments' | 'watch' | 'read' | 'contentEvents' | 'actions' | 'bounceTracking';
  /** What it is, in words. */
  readonly description: string;
  /** The least-privileged permission that serves it: what to grant. */
  readonly permission: string;
  /** Permissions any of which serves it (the least privileged first). */
  readonly accepted: readonly string[];
}

/**
 * What each feature needs, least privileged first. Mail.ReadWrite reads whole messages too, so it serves reading;
 * it is not a read scope for subscriptions, so it does not serve watching.
 */
export const FEATURE_PERMISSIONS: readonly FeaturePermission[] = [
  {
    feature: 'send',
    description: 'sending mail (POST /api/mail/send)',
    permission: SEND_PERMISSION,
    accepted: [SEND_PERMISSION],
  },
  {
    feature: 'largeAttachments',
    description: 'drafts for attachments of 3 MB or more, and the outbox lookup of an interrupted send',
    permission: MAILBOX_WRITE_PERMISSION,
    accepted: [MAILBOX_WRITE_PERMISSION],
  },
  {
    feature: 'watch',
    description: 'watching mailboxes (subscriptions, message metadata, delta)',
    permission: WATCH_PERMISSION,
    accepted: WATCH_PERMISSIONS_ACCEPTED,
  },
  {
    feature: 'read',
    description: 'reading bodies, attachments and MIME through the message API',
    permission: READ_PERMISSION,
    accepted: READ_PERMISSIONS_ACCEPTED,
  },
  {
    feature: 'contentEvents',
    description: 'bodies and attachment lists in mail.received events (PUT /api/mailboxes/{mailbox} with content)',
    permission: READ_PERMISSION,
    accepted: READ_PERMISSIONS_ACCEPTED,
  },
  {
    feature: 'actions',
    description: 'marking, flagging, moving and deleting messages, and reply/forward drafts',
    permission: MAILBOX_WRITE_PERMISSION,
    accepted: [MAILBOX_WRITE_PERMISSION],
  },
  {
    feature: 'bounceTracking',
    description:
      "watching senders' Inboxes for non-delivery reports (BOUNCE_TRACKING=on): the report's body names the failed recipients",
    permission: READ_PERMISSION,
    // Mail.Read alone serves both halves: the Inbox subscription (Graph refuses one made with Mail.ReadWrite alone)
    // and the report's body (Mail.ReadBasic.All leaves it out).
    accepted: [READ_PERMISSION],
  },
];

/** The feature's entry. */
export function featurePermission(feature: FeaturePermission['feature']): FeaturePermission {
  return FEATURE_PERMISSIONS.find((f) => f.feature === feature)!;
}
