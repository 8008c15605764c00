/**
 * Catch-up: a watched folder's messages delta query from the stored delta link publishes `mail.received` for mail that
 * arrived while notifications were missing (a `missed` event, a recreated subscription), deduplicated by the event
 * ledger. When Graph has lost the sync state (`syncStateNotFound`, `resyncRequired`) it starts a new delta, filtered
 * to mail received since shortly before the last good sync, so nothing in the gap is skipped and old mail is not
 * replayed.
 */
import { GraphError, type Client } from '@microsoft/microsoft-graph-client';
import type { Message } from '@microsoft/microsoft-graph-types';
import { EVENT_RETENTION_MS, type EventPublisher } from '../../events/eventPublisher';
import { checkForBounce, type BounceHandler } from '../bounces/bounceCheck';
import { wantsContent } from '../content/eventContent';
import { fitMailReceived, mailReceivedEvent, MESSAGE_SELECT, type MailContent } from '../content/mailReceived';
import { readMessageForEvent } from '../content/messageContent';
import { DEFAULT_FOLDER, folderMessagesPath } from '../watchFolders';
import type { WatchedMailbox, WatchStore } from '../watchStore';

/** Delta items per page asked for (Graph's default for messages is 10). */
const PAGE_SIZE = 50;
/** How far before the last good sync a resync looks, for clock skew and in-flight delivery. */
const RESYNC_MARGIN_MS = 60 * 60_000;
/** Mail older than this is never published by catch-up: its dedupe record may be gone (see EVENT_RETENTION_MS). */
const HORIZON_MS = EVENT_RETENTION_MS - 86_400_000;

interface DeltaPage {
  value?: Array<Message & { id: string; '@removed'?: unknown }>;
  '@odata.nextLink'?: string;
  '@odata.deltaLink'?: string;
}

/** What one catch-up did. */
export interface CatchUpResult {
  published: number;
  duplicates: number;
  /** True when Graph had lost the sync state and a new delta was started. */
  resynced: boolean;
}

/** True when Graph says the delta token can't be used any more. */
function isSyncStateLost(err: unknown): boolean {
  if (!(err instanceof GraphError)) return false;
  return err.statusCode === 410 || /syncstatenotfound|resyncrequired|syncstateinvalid/i.test(err.code ?? '');
}

/** Runs delta queries for watched mailboxes. */
export class CatchUp {
  constructor(
    private readonly client: Client,
    private readonly store: WatchStore,
    private readonly publisher: EventPublisher,
    /** Matches non-delivery reports arriving in an Inbox to sent mail (absent: reports are ordinary mail). */
    private readonly bounces?: BounceHandler,
  ) {}

  /** The first delta link of `mailbox`'s `folder`, covering mail received from `since` on; publishes nothing. */
  async initialLink(mailbox: string, folder: string, since: Date): Promise<string> {
    const { deltaLink } = await this.walk(firstDeltaUrl(mailbox, folder, since), () => Promise.resolve());
    return deltaLink;
  }

  /** Publishes what arrived since the stored delta link and stores the new link. */
  async run(record: WatchedMailbox): Promise<CatchUpResult> {
    const startedAt = new Date();
    const horizon = Math.max(new Date(record.createdAt).getTime() - RESYNC_MARGIN_MS, Date.now() - HORIZON_MS);
    const result: CatchUpResult = { published: 0, duplicates: 0, resynced: false };
    const publish = async (listed: Message & { id: string }) => {
      if (!listed.receivedDateTime || new Date(listed.receivedDateTime).getTime() < horizon) return;
      if (this.bounces && (record.folder ?? DEFAULT_FOLDER) === DEFAULT_FOLDER) {
        await checkForBounce(this.client, this.bounces, record.mailbox, listed);
      }
      // Watched for bounces only (BOUNCE_TRACKING): its mail is not announced.
      if (record.bounceOnly) return;
      let message = listed;
      let content: MailContent = {};
      if (wantsContent(record.content)) {
        // The delta page holds metadata only: the content is read per message, as for a notification.
        try {
          ({ message, content } = await readMessageForEvent(this.client, record.mailbox, listed.id, record.content));
        } catch (err) {
          // Deleted or moved since the delta page was read: nothing left to announce.
          if (err instanceof GraphError && err.statusCode === 404) return;
          throw err;
        }
      }
      const outcome = await this.publisher.publish(
        mailReceivedEvent(record.mailbox, message, content, record.folder),
        undefined,
        fitMailReceived,
      );
      if (outcome === 'published') result.published++;
      else result.duplicates++;
    };
    let deltaLink: string;
    try {
      if (!record.deltaLink) throw new MissingDeltaLink();
      ({ deltaLink } = await this.walk(record.deltaLink, publish));
    } catch (err) {
      if (!(err instanceof MissingDeltaLink) && !isSyncStateLost(err)) throw err;
      result.resynced = true;
      const lastGood = new Date(record.deltaSyncedAt ?? record.createdAt).getTime() - RESYNC_MARGIN_MS;
      ({ deltaLink } = await this.walk(
        firstDeltaUrl(record.mailbox, record.folder, new Date(Math.max(lastGood, horizon))),
        publish,
      ));
    }
    await this.store.update(
      record.mailbox,
      (current) => ({
        ...current,
        // A subscription recreated meanwhile brought its own link; keep the newer one.
        ...(current.subscriptionId === record.subscriptionId
          ? { deltaLink, deltaSyncedAt: startedAt.toISOString() }
          : {}),
        eventsPublished: current.eventsPublished + result.published,
        lastEventAt: result.published > 0 ? new Date().toISOString() : current.lastEventAt,
      }),
      record.folder,
    );
    return result;
  }

  private async walk(
    url: string,
    onMessage: (message: Message & { id: string }) => Promise<void>,
  ): Promise<{ deltaLink: string }> {
    let next: string | undefined = url;
    for (;;) {
      const page = (await this.client.api(next).header('Prefer', `odata.maxpagesize=${PAGE_SIZE}`).get()) as DeltaPage;
      const messages = (page.value ?? []).filter((m) => m['@removed'] === undefined);
      messages.sort((a, b) => (a.receivedDateTime ?? '').localeCompare(b.receivedDateTime ?? ''));
      for (const message of messages) await onMessage(message);
      if (page['@odata.deltaLink']) return { deltaLink: page['@odata.deltaLink'] };
      next = page['@odata.nextLink'];
      if (!next) throw new Error('the delta page has neither @odata.nextLink nor @odata.deltaLink');
    }
  }
}

class MissingDeltaLink extends Error {}

function firstDeltaUrl(mailbox: string, folder: string | undefined, since: Date): string {
  const filter = `receivedDateTime ge ${since.toISOString().replace(/\.\d{3}Z$/, 'Z')}`;
  return `/users/${encodeURIComponent(mailbox)}/${folderMessagesPath(folder ?? DEFAULT_FOLDER)}/delta?$select=${MESSAGE_SELECT}&$filter=${encodeURIComponent(filter)}`;
}
