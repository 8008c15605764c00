/**
 * The message on the `mail-outbox` and `mail-outbox-paced` queues: it only names the mail (the record and the stored
 * request hold the rest), and the pacer slot it holds once it holds one. Written by `OutboxStore.enqueue`, read
 * by the `sendOutbox` and `sendOutboxPaced` triggers.
 */
import { z } from 'zod';
import { queueMessageContract } from '../../platform/queues/queueMessages';

/** An outbox queue message: `{ "id": ... }`, or `{ "id": ..., "slotAt": ... }` on the paced queue. */
export const outboxMessage = queueMessageContract(
  z.object({
    id: z.string().min(1).max(100),
    /** The pacer slot the message holds, epoch ms. */
    slotAt: z.number().int().positive().optional(),
  }),
);
