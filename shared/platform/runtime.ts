/**
 * The process's long-lived services, created on first use from the validated configuration: one token helper (so
 * its token cache and Key Vault read are shared by every invocation) and one Graph client.
 */
import type { Client } from '@microsoft/microsoft-graph-client';
import { AppCredential } from '../identity/appCredential';
import { getConfig } from './config';
import { createGraphClient } from '../graph/graphClient';
import { IdempotencyStore } from '../mail/idempotencyStore';
import { MailSender } from '../mail/mailSender';
import type { SendMailDependencies } from '../mail/sendMailHandler';

let credential: AppCredential | undefined;
let graph: Client | undefined;
let sendDependencies: SendMailDependencies | undefined;

/** The process-wide token helper. */
export function getAppCredential(): AppCredential {
  credential ??= new AppCredential(getConfig());
  return credential;
}

/** The process-wide Graph client, authenticated by {@link getAppCredential}. */
export function getGraphClient(): Client {
  graph ??= createGraphClient(getConfig(), getAppCredential(), {
    maxTotalWaitSeconds: getConfig().graphMaxWaitSeconds,
  });
  return graph;
}

/** What `POST /api/mail/send` needs, shared by every invocation (so the per-mailbox limiter sees them all). */
export function getSendMailDependencies(): SendMailDependencies {
  sendDependencies ??= {
    config: getConfig(),
    credential: getAppCredential(),
    sender: new MailSender(getGraphClient()),
    idempotency: IdempotencyStore.fromConfig(getConfig()),
  };
  return sendDependencies;
}
