import { RestError } from '@azure/core-rest-pipeline';
import { loadConfig } from '../../shared/platform/config';
import { UNIT_SETTINGS } from '../support/unitSettings';
import { CachedStorageProbe, type StorageServiceCheck } from '../../shared/diagnostics/storageProbe';
import { explainStorageError } from '../../shared/platform/storage/storageErrors';

const config = loadConfig({
  ...UNIT_SETTINGS,
  AzureWebJobsStorage__accountName: 'stmail',
  AzureWebJobsStorage__credential: 'managedidentity',
  AzureWebJobsStorage__clientId: '33333333-3333-3333-3333-333333333333',
});

describe('storage failures explained', () => {
  const forbidden = () =>
    new RestError('This request is not authorized to perform this operation using this permission.', {
      statusCode: 403,
      code: 'AuthorizationPermissionMismatch',
    });

  it('names the table role and the identity for a 403', () => {
    const text = explainStorageError(forbidden(), 'table', 'idempotency', config);
    expect(text).toMatch(/managed identity \(client id 33333333-.*\).*'Storage Table Data Contributor'/);
    expect(text).toContain('AuthorizationPermissionMismatch');
  });

  it('names the queue roles, including the trigger role, for a 403', () => {
    const text = explainStorageError(forbidden(), 'queue', 'graph-notifications', config);
    expect(text).toMatch(/'Storage Queue Data Contributor'.*'Storage Queue Data Message Processor'/);
  });

  it('says "storage unreachable" when the service does not answer', () => {
    const err = new RestError('connect ECONNREFUSED 127.0.0.1:1', { code: 'ECONNREFUSED' });
    expect(explainStorageError(err, 'queue', 'q', config)).toMatch(/^Queue storage unreachable \(ECONNREFUSED\)/);
  });
});

describe('the health probe cache', () => {
  it('probes once per TTL, and shares a probe among concurrent callers', async () => {
    let now = 0;
    let probes = 0;
    const result: StorageServiceCheck[] = [{ service: 'table', resource: 't', status: 'ok', detail: '' }];
    const cache = new CachedStorageProbe(
      () => {
        probes++;
        return Promise.resolve(result);
      },
      5_000,
      () => now,
    );
    await Promise.all([cache.check(), cache.check(), cache.check()]);
    now += 4_999;
    await cache.check();
    expect(probes).toBe(1);
    now += 1;
    await cache.check();
    expect(probes).toBe(2);
  });
});
