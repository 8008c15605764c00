/**
 * What the gateway does while its settings are invalid, so an operator sees it in Azure instead of a host that
 * never starts: `/api/health` and every HTTP function answer `503 configuration-invalid` naming the bad settings
 * (never their values), and the queue and timer functions are not registered at all.
 *
 * Not registering is what keeps queued work safe. A queue function that threw on every message would have each
 * message dequeued, retried `maxDequeueCount` times and moved to the poison queue: one bad setting would poison every
 * mail and notification. Unregistered, the host never reads those queues; their messages wait untouched (dequeue
 * count 0) until the settings are fixed, which restarts the app, registers the functions and processes them.
 */
import type { HttpHandler } from '@azure/functions';
import { configurationProblems, problemSettingNames } from './config';
import { problem, problemResponse, type ProblemDocument } from './problems/problem';

/** The `configuration-invalid` problem while settings are invalid; undefined when they are valid. */
export function configurationProblem(): ProblemDocument | undefined {
  const problems = configurationProblems();
  if (problems.length === 0) return undefined;
  return problem(
    503,
    'configuration-invalid',
    'The gateway is not configured',
    `Fix these app settings (the app restarts when they change): ${problems.join('; ')}`,
    { settings: problemSettingNames(problems) },
  );
}

/** True when every setting is valid: the queue and timer functions register only then (see the module comment). */
export function isConfigured(): boolean {
  return configurationProblems().length === 0;
}

/** `handler`, answered for by `503 configuration-invalid` while the settings are invalid. */
export function whenConfigured(handler: HttpHandler): HttpHandler {
  return (request, context) => {
    const doc = configurationProblem();
    return doc ? problemResponse(doc) : handler(request, context);
  };
}
