/**
 * What a test file needs from the run `npm test` set up: the test CA, Azurite, and a local cloud whose settings
 * are put in `process.env` (the managed-identity credential reads IDENTITY_ENDPOINT from there, as in Azure).
 */
import { loadConfig, type GatewayConfig } from '../../shared/platform/config';
import { appRoot } from '../../shared/platform/packageInfo';
import { startAzurite, type RunningAzurite } from '../emulators/azurite';
import { LocalCloud, type LocalCloudOptions } from '../emulators/localCloud';
import { readTestCa, type PemPair } from '../emulators/testCa';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests with \`npm test\`.`);
  return value;
}

/** The test run's CA (trusted by this process through NODE_EXTRA_CA_CERTS). */
export function testCa(): PemPair {
  return readTestCa(required('TEST_CA_DIR'));
}

/** The Azurite connection string of this test run. */
export function azuriteConnectionString(): string {
  return required('TEST_AZURITE_CONNECTION_STRING');
}

/** A started local cloud, the app settings that point at it, and the gateway config read from them. */
export interface TestCloud {
  cloud: LocalCloud;
  settings: Record<string, string>;
  config: GatewayConfig;
  close(): Promise<void>;
}

let started = false;

/**
 * Starts a local cloud, exports its settings to `process.env`, and loads the gateway config from them. Once per
 * test file: MSAL keeps the managed-identity endpoint it first found for the life of the process (in Azure there
 * is only one), so tests vary the tenant (consent, credentials) instead of starting another cloud.
 */
export async function startTestCloud(
  options: Omit<LocalCloudOptions, 'ca'> & {
    /**
     * Start an Azurite of this file's own: the functions hosts of every test file poll the same queue names, so a
     * file whose queue messages matter (notifications, events) must not share them.
     */
    privateStorage?: boolean;
  } = {},
): Promise<TestCloud> {
  if (started)
    throw new Error('startTestCloud: one local cloud per test file (MSAL caches the managed-identity endpoint)');
  started = true;
  const cloud = await LocalCloud.start({ ca: testCa(), ...options });
  let azurite: RunningAzurite | undefined;
  if (options.privateStorage) azurite = await startAzurite({ projectRoot: appRoot() });
  const settings = {
    ...cloud.settings(),
    AzureWebJobsStorage: azurite?.connectionString ?? azuriteConnectionString(),
  };
  const previous = { ...process.env };
  Object.assign(process.env, settings);
  return {
    cloud,
    settings,
    config: loadConfig(process.env),
    close: async () => {
      await cloud.close();
      await azurite?.stop();
      process.env = previous;
    },
  };
}
