/**
 * The tenant's external recipient budget: the pure rules (internal recipients never count, a full day defers until
 * the window moves, a give-back frees the budget) and the Table row shared by two instances (Azurite).
 */
import { TableClient } from '@azure/data-tables';
import { TenantBudget } from '../../shared/pacing/tenantBudget';
import { countExternal, decideTenantExternal, giveBackExternal } from '../../shared/pacing/tenantRules';
import { RECIPIENT_BUCKET_MS, RECIPIENT_WINDOW_MS } from '../../shared/pacing/recipientWindow';
import { azuriteConnectionString } from '../support/testEnv';

const DOMAINS = new Set(['contoso.com', 'fabrikam.com']);
const T0 = 1_800_000_000_000;

describe('tenant external recipient rules', () => {
  it('counts only recipients outside the accepted domains, whatever their case', () => {
    expect(countExternal(['a@Contoso.com', 'b@FABRIKAM.com'], DOMAINS)).toBe(0);
    expect(countExternal(['a@contoso.com', 'x@example.org', 'y@sub.contoso.com'], DOMAINS)).toBe(2);
  });

  it('grants internal mail without touching the row, even with the budget spent', () => {
    const full = decideTenantExternal([], 5, 5, T0).next ?? [];
    const step = decideTenantExternal(full, 5, 0, T0 + 1000);
    expect(step.result).toEqual({ kind: 'granted', countedAt: T0 + 1000 });
    expect(step.next).toBeUndefined();
  });

  it('defers an external mail past the budget until its oldest bucket leaves the 24 h window', () => {
    const first = decideTenantExternal([], 5, 4, T0);
    expect(first.result.kind).toBe('granted');
    const spent = first.next ?? [];
    const later = T0 + 60 * 60_000;
    const over = decideTenantExternal(spent, 5, 2, later);
    expect(over.result.kind).toBe('deferred');
    expect(over.next).toBeUndefined();
    const notBefore = over.result.kind === 'deferred' ? over.result.notBefore : 0;
    // Never inside the day of the first grant: the window has to have moved past it.
    expect(notBefore).toBeGreaterThanOrEqual(T0 + RECIPIENT_WINDOW_MS);
    expect(notBefore).toBeLessThanOrEqual(T0 + RECIPIENT_WINDOW_MS + 2 * RECIPIENT_BUCKET_MS);
    expect(decideTenantExternal(spent, 5, 2, notBefore).result.kind).toBe('granted');
    expect(decideTenantExternal(spent, 5, 1, later).result.kind).toBe('granted');
  });

  it('refuses a mail that alone exceeds the budget, and a give-back returns the room', () => {
    expect(decideTenantExternal([], 5, 6, T0).result).toEqual({
      kind: 'tooManyExternalRecipients',
      externalRecipientsPerDay: 5,
    });
    const spent = decideTenantExternal([], 5, 5, T0).next ?? [];
    expect(decideTenantExternal(spent, 5, 1, T0).result.kind).toBe('deferred');
    const back = giveBackExternal(spent, T0, 3);
    expect(decideTenantExternal(back, 5, 3, T0).result.kind).toBe('granted');
  });
});

describe('TenantBudget on Table storage, shared by instances', () => {
  const table = `tenantbudget${Date.now()}`;
  const client = (): TableClient =>
    TableClient.fromConnectionString(azuriteConnectionString(), table, { allowInsecureConnection: true });

  afterAll(async () => {
    await client()
      .deleteTable()
      .catch(() => undefined);
  });

  it('two instances together never count more than the budget, internal mail always goes', async () => {
    const a = new TenantBudget(client(), 20);
    const b = new TenantBudget(client(), 20);
    const decisions = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? a : b).reserve(1, T0 + i)));
    expect(decisions.filter((d) => d.kind === 'granted')).toHaveLength(20);
    expect(decisions.filter((d) => d.kind === 'deferred')).toHaveLength(10);
    expect(await a.used(T0 + 100)).toBe(20);
    expect(await b.reserve(0, T0 + 200)).toEqual({ kind: 'granted', countedAt: T0 + 200 });
    // The window moves: a day (and a bucket) later the budget is free again.
    const dayLater = T0 + RECIPIENT_WINDOW_MS + 2 * RECIPIENT_BUCKET_MS;
    expect((await b.reserve(5, dayLater)).kind).toBe('granted');
    expect(await a.used(dayLater)).toBe(5);
    await a.giveBack(dayLater, 5);
    expect(await b.used(dayLater)).toBe(0);
  });
});
