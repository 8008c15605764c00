/**
 * Where the README lists a mail's statuses, it lists all of them: the ones `GET /api/mail/{id}` can answer with
 * (its schema, which the OpenAPI test holds to real answers).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { mailStatusSchema } from '../../shared/openapi/responseSchemas';

it('every list of mail statuses in the README names every status', () => {
  const statuses = mailStatusSchema.shape.status.options;
  expect(statuses).toContain('sending');
  const readme = readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
  // A line of prose naming at least three statuses is a list of them (event names such as `mail.sent` are not
  // statuses); lines in fenced code blocks are commands and sample answers, not lists.
  let inFence = false;
  const prose = readme.split('\n').filter((line) => {
    if (line.trimStart().startsWith('```')) inFence = !inFence;
    return !inFence;
  });
  const lists = prose.filter((line) => statuses.filter((s) => new RegExp(`(?<![\\w.])${s}\\b`).test(line)).length >= 3);
  expect(lists.length).toBeGreaterThanOrEqual(2);
  for (const line of lists) {
    expect([line, statuses.filter((s) => !new RegExp(`(?<![\\w.])${s}\\b`).test(line))]).toEqual([line, []]);
  }
});
