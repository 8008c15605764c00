/**
 * What the Bicep CLI and a real deployment would catch, checked on the syntax trees of infra/ (see
 * test/support/bicep.ts): module wiring, parameter files and docs, and the security settings the template promises.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { runInNewContext } from 'node:vm';
import {
  type BicepDeclaration,
  type BicepModel,
  findBicepFiles,
  propertyNames,
  propertyPath,
  readBicepModel,
  stringElements,
  stringText,
} from '../support/bicep';

import { FEATURE_PERMISSIONS } from '../../shared/identity/graphPermissions';

const INFRA = path.join(__dirname, '..', '..', 'infra');

let models: Map<string, BicepModel>;
const model = (relative: string): BicepModel => {
  const found = models.get(relative);
  if (!found) throw new Error(`no ${relative} under infra/`);
  return found;
};
const resourcesOf = (relative: string, type: string): BicepDeclaration[] =>
  model(relative).resources.filter((r) => r.target.split('@')[0] === type);
const only = <T>(items: T[]): T => {
  expect(items).toHaveLength(1);
  return items[0];
};
const textAt = (declaration: BicepDeclaration, dotted: string): string | undefined =>
  propertyPath(declaration.body, dotted)?.text;

beforeAll(async () => {
  models = new Map();
  for (const file of findBicepFiles(INFRA)) models.set(path.relative(INFRA, file), await readBicepModel(file));
});

describe('module wiring (what `bicep build` would reject)', () => {
  it('every module call passes only parameters the module declares, and every parameter it requires', () => {
    const problems: string[] = [];
    for (const [file, m] of models) {
      for (const call of m.modules) {
        const target = path.relative(INFRA, path.join(path.dirname(path.join(INFRA, file)), call.target));
        const callee = models.get(target);
        if (!callee) {
          problems.push(`${file}: module ${call.symbol} points at ${call.target}, which does not exist`);
          continue;
        }
        const paramsNode = propertyPath(call.body, 'params');
        const passed = paramsNode ? propertyNames(paramsNode) : [];
        for (const name of passed) {
          if (!callee.params.has(name)) problems.push(`${file}: module ${call.symbol} passes unknown param ${name}`);
        }
        for (const param of callee.params.values()) {
          if (param.defaultText === undefined && !passed.includes(param.name)) {
            problems.push(`${file}: module ${call.symbol} does not pass required param ${param.name}`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('main.parameters.json names only real parameters and gives every required one', () => {
    const file = JSON.parse(readFileSync(path.join(INFRA, 'main.parameters.json'), 'utf8')) as {
      parameters: Record<string, unknown>;
    };
    const params = model('main.bicep').params;
    expect(Object.keys(file.parameters).filter((name) => !params.has(name))).toEqual([]);
    const required = [...params.values()].filter((p) => p.defaultText === undefined).map((p) => p.name);
    expect(required.filter((name) => !(name in file.parameters))).toEqual([]);
  });

  it("infra/README.md's parameter table documents every parameter of main.bicep, and no other", () => {
    const readme = readFileSync(path.join(INFRA, 'README.md'), 'utf8');
    const section = /^## Parameters\n([\s\S]*?)^## /m.exec(readme);
    expect(section).not.toBeNull();
    const documented = [...section![1].matchAll(/^\| `([A-Za-z0-9]+)`\s*\|/gm)].map((m) => m[1]);
    expect([...documented].sort()).toEqual([...model('main.bicep').params.keys()].sort());
  });
});

describe('runtime and publishing', () => {
  it('lets maximumInstanceCount go as low as Flex Consumption allows (1) and no higher than 1000', () => {
    for (const file of ['main.bicep', 'modules/functionApp.bicep']) {
      const param = model(file).params.get('maximumInstanceCount');
      expect([file, param?.minValue, param?.maxValue]).toEqual([file, '1', '1000']);
    }
  });

  it('offers only supported Node.js versions (22, 24), 22 by default, in main.bicep and the module', () => {
    for (const file of ['main.bicep', 'modules/functionApp.bicep']) {
      const param = model(file).params.get('nodeVersion');
      expect(param?.allowed).toEqual(["'22'", "'24'"]);
      expect(param?.defaultText).toBe("'22'");
    }
  });

  it('sets no site property Flex Consumption refuses (ftpsState, alwaysOn, runtime versions, ...)', () => {
    // Microsoft's list of site properties deprecated on Flex Consumption (flex-consumption-plan "Deprecated
    // properties and settings"): ARM rejects them on an FC1 site, so the first deployment would fail.
    const refusedOnFlex = [
      'ftpsState',
      'use32BitWorkerProcess',
      'isReserved',
      'isXenon',
      'windowsFxVersion',
      'alwaysOn',
      'preWarmedInstanceCount',
      'functionAppScaleLimit',
      'containerSize',
      'javaVersion',
      'powerShellVersion',
      'netFrameworkVersion',
      'linuxFxVersion',
    ];
    const site = only(resourcesOf('modules/functionApp.bicep', 'Microsoft.Web/sites'));
    const siteConfig = propertyPath(site.body, 'properties.siteConfig');
    const properties = propertyPath(site.body, 'properties');
    const set = [...(siteConfig ? propertyNames(siteConfig) : []), ...propertyNames(properties!)].map((n) =>
      n.toLowerCase(),
    );
    expect(set.filter((name) => refusedOnFlex.some((refused) => refused.toLowerCase() === name))).toEqual([]);
    expect(propertyPath(site.body, 'properties.functionAppConfig.runtime.name')?.text).toBe("'node'");
  });

  it('turns basic-auth publishing credentials off for ftp and scm', () => {
    const site = only(resourcesOf('modules/functionApp.bicep', 'Microsoft.Web/sites'));
    const policies = only(
      resourcesOf('modules/functionApp.bicep', 'Microsoft.Web/sites/basicPublishingCredentialsPolicies'),
    );
    expect(policies.valueText).toMatch(/for policy in \[\s*'ftp'\s*'scm'\s*\]/);
    expect(textAt(policies, 'name')).toBe('policy');
    expect(textAt(policies, 'properties.allow')).toBe('false');
    expect(textAt(policies, 'parent')).toBe(site.symbol);
  });
});

describe('logs', () => {
  const diagnostics = (file: string) => only(resourcesOf(file, 'Microsoft.Insights/diagnosticSettings'));

  it.each([
    ['modules/keyVault.bicep', 'Microsoft.KeyVault/vaults', 'AuditEvent'],
    ['modules/functionApp.bicep', 'Microsoft.Web/sites', 'FunctionAppLogs'],
  ])('%s sends %s logs (%s) to the Log Analytics workspace', (file, type, category) => {
    const setting = diagnostics(file);
    expect(textAt(setting, 'scope')).toBe(only(resourcesOf(file, type)).symbol);
    expect(textAt(setting, 'properties.workspaceId')).toBe('logAnalyticsWorkspaceId');
    expect(textAt(setting, 'properties.logs')).toContain(`category: '${category}'`);
    expect(textAt(setting, 'properties.logs')).toContain('enabled: true');
  });

  it('main.bicep hands both modules the workspace of the monitoring module', () => {
    for (const symbol of ['keyVault', 'functionApp']) {
      const call = only(model('main.bicep').modules.filter((m) => m.symbol === symbol));
      expect(textAt(call, 'params.logAnalyticsWorkspaceId')).toBe('monitoring.outputs.workspaceId');
    }
  });

  it('the workspace refuses shared-key (local) authentication', () => {
    const workspace = only(resourcesOf('modules/monitoring.bicep', 'Microsoft.OperationalInsights/workspaces'));
    expect(textAt(workspace, 'properties.features.disableLocalAuth')).toBe('true');
  });
});

describe('storage roles', () => {
  it('gives the identity one queue role, Storage Queue Data Contributor, not the redundant narrower ones', () => {
    const roles = model('modules/storage.bicep').vars.get('storageRoles');
    expect(roles).toBeDefined();
    const names = [...roles!.text.matchAll(/name: '([^']+)'/g)].map((m) => m[1]);
    expect(names.filter((n) => n.startsWith('Storage Queue'))).toEqual(['Storage Queue Data Contributor']);
    expect(roles!.text).not.toMatch(/8a0f0c08-91a1-4084-bc3d-661d67233fed|c6a89b2d-59bc-44d0-9896-0f6e12d7b80a/);
  });
});

describe('the tenant-wide grant and the permission check', () => {
  it('GRAPH_PERMISSION_CHECK follows grantMailPermissionsTenantWide unless set', () => {
    const main = model('main.bicep');
    expect(main.params.get('graphPermissionCheck')?.defaultText).toBe(
      "grantMailPermissionsTenantWide ? 'token' : 'off'",
    );
    expect(main.params.get('grantMailPermissionsTenantWide')?.defaultText).toBe('true');
    expect(main.vars.get('appSettings')?.text).toMatch(/'GRAPH_PERMISSION_CHECK': graphPermissionCheck\n/);
  });

  it('declares (requiredResourceAccess) exactly what it grants, so a scoped app declares no Mail.* permission', () => {
    const app = model('modules/appRegistration.bicep');
    const application = only(app.resources.filter((r) => r.target.startsWith('Microsoft.Graph/applications@')));
    expect(textAt(application, 'requiredResourceAccess')).toMatch(/map\(grantedRoleIds,/);
    const grants = only(app.resources.filter((r) => r.target.startsWith('Microsoft.Graph/appRoleAssignedTo@')));
    expect(grants.valueText).toMatch(/^\[\s*for roleId in grantedRoleIds:/);
    expect(app.vars.get('grantedRoleIds')?.text).toBe(
      'concat(grantMailPermissionsTenantWide ? mailRoleIds : [], [\n  userReadAllRoleId\n])',
    );
    expect(app.vars.get('mailRoleIds')?.text).toMatch(/^concat\(/);
  });

  it('sets start and end dates on the key credentials when given, and leaves the keys out (never null) when not', () => {
    const app = model('modules/appRegistration.bicep');
    const application = only(app.resources.filter((r) => r.target.startsWith('Microsoft.Graph/applications@')));
    const keyCredentials = textAt(application, 'keyCredentials') ?? '';
    expect(keyCredentials).not.toMatch(/\bnull\b/);
    expect(keyCredentials).toMatch(/^map\(certificates, cert => union\(\{/);
    expect(keyCredentials).toMatch(
      /empty\(cert\.startDateTime\) \? \{\} : \{\s*startDateTime: cert\.startDateTime\s*\}/,
    );
    expect(keyCredentials).toMatch(/empty\(cert\.endDateTime\) \? \{\} : \{\s*endDateTime: cert\.endDateTime\s*\}/);
    // The always-present keys sit in the first object of the union; no date among them.
    expect(keyCredentials.slice(0, keyCredentials.indexOf('}'))).not.toMatch(/DateTime/);
    const call = only(model('main.bicep').modules.filter((m) => m.symbol === 'appRegistration'));
    expect(textAt(call, 'params.certificateStartDateTime')).toBe('appCertificateStartDateTime');
    expect(textAt(call, 'params.certificateEndDateTime')).toBe('appCertificateEndDateTime');
  });
});

describe('least privilege per feature (the app registration grants what the features on need, nothing else)', () => {
  const FEATURE_FLAGS = ['featureLargeAttachments', 'featureWatch', 'featureReadMail', 'featureMailActions'] as const;
  type Flags = Record<(typeof FEATURE_FLAGS)[number], boolean>;

  /** Microsoft Graph's application permission app role ids (the same in every tenant). */
  const ROLE_IDS: Record<string, string> = {
    mailSendRoleId: 'b633e1c5-b582-4048-a93e-9f11b44c7e96',
    mailReadWriteRoleId: 'e2a3a72e-5f79-4c64-b1b1-878b674786c9',
    mailReadRoleId: '810c84a8-4a9e-49e6-bf7d-12d183f40d01',
    mailReadBasicAllRoleId: '693c5e45-0940-467d-9b8a-1022fb9d42ef',
    userReadAllRoleId: 'df021288-bdef-4463-88db-98f22de89214',
  };
  const PERMISSION_OF: Record<string, string> = {
    mailSendRoleId: 'Mail.Send',
    mailReadWriteRoleId: 'Mail.ReadWrite',
    mailReadRoleId: 'Mail.Read',
    mailReadBasicAllRoleId: 'Mail.ReadBasic.All',
  };

  /**
   * The Mail.* permissions the module grants for `flags`, by evaluating its own expressions (`||`, `&&`, `!`, `?:`,
   * array literals and `concat` mean the same in Bicep and JavaScript).
   */
  function granted(flags: Flags): string[] {
    const app = model('modules/appRegistration.bicep');
    const scope: Record<string, unknown> = {
      ...flags,
      ...Object.fromEntries(Object.keys(PERMISSION_OF).map((v) => [v, PERMISSION_OF[v]])),
      concat: (...parts: unknown[][]) => parts.flat(),
    };
    const evaluate = (name: string): unknown => {
      const text = app.vars.get(name)?.text;
      if (!text) throw new Error(`no var ${name}`);
      return runInNewContext(`(${text})`, { ...scope }) as unknown;
    };
    for (const name of ['needsMailReadWrite', 'needsMailRead', 'needsMailReadBasic']) scope[name] = evaluate(name);
    return evaluate('mailRoleIds') as string[];
  }

  /** What the gateway's features need (shared/identity/graphPermissions.ts), for the features `flags` turn on. */
  function served(permissions: readonly string[], flags: Flags): boolean {
    const on = new Set<string>(['send']);
    if (flags.featureLargeAttachments) on.add('largeAttachments');
    if (flags.featureWatch) on.add('watch');
    if (flags.featureReadMail) on.add('read').add('contentEvents');
    if (flags.featureMailActions) on.add('actions');
    return FEATURE_PERMISSIONS.filter((f) => on.has(f.feature)).every((f) =>
      f.accepted.some((p) => permissions.includes(p)),
    );
  }

  const combinations: Flags[] = Array.from(
    { length: 16 },
    (_, bits) => Object.fromEntries(FEATURE_FLAGS.map((flag, i) => [flag, (bits & (1 << i)) !== 0])) as Flags,
  );

  it('names the app roles by their real ids', () => {
    const app = model('modules/appRegistration.bicep');
    for (const [name, id] of Object.entries(ROLE_IDS))
      expect([name, stringText(app.vars.get(name)!)]).toEqual([name, id]);
  });

  it.each(combinations.map((flags) => [JSON.stringify(flags), flags] as const))(
    'grants for %s what serves every feature on, and nothing that could be left out',
    (_name, flags) => {
      const permissions = granted(flags);
      expect(served(permissions, flags)).toBe(true);
      for (const dropped of permissions) {
        expect([
          dropped,
          served(
            permissions.filter((p) => p !== dropped),
            flags,
          ),
        ]).toEqual([dropped, false]);
      }
    },
  );

  it('grants only Mail.Send and Mail.ReadWrite by default (no watching, no reading), as before', () => {
    expect(
      granted({
        featureLargeAttachments: true,
        featureWatch: false,
        featureReadMail: false,
        featureMailActions: false,
      }),
    ).toEqual(['Mail.Send', 'Mail.ReadWrite']);
    expect(
      granted({ featureLargeAttachments: false, featureWatch: true, featureReadMail: true, featureMailActions: false }),
    ).toEqual(['Mail.Send', 'Mail.Read']);
  });

  it('main.bicep turns the features on from the settings and hands them to the module', () => {
    const main = model('main.bicep');
    expect(main.params.get('featureLargeAttachments')?.defaultText).toBe('true');
    expect(main.params.get('featureWatch')?.defaultText).toBe('!empty(allowedWatchMailboxes)');
    expect(main.params.get('featureReadMail')?.defaultText).toBe('!empty(allowedReadMailboxes)');
    expect(main.params.get('featureMailActions')?.defaultText).toBe('!empty(allowedReadMailboxes)');
    const call = only(main.modules.filter((m) => m.target === 'modules/appRegistration.bicep'));
    for (const flag of FEATURE_FLAGS) expect(textAt(call, `params.${flag}`)).toBe(flag);
    const app = model('modules/appRegistration.bicep');
    expect(FEATURE_FLAGS.map((flag) => [flag, app.params.get(flag)?.type])).toEqual(
      FEATURE_FLAGS.map((flag) => [flag, 'bool']),
    );
  });
});

describe('network isolation', () => {
  it('is off by default and, when on, closes the public endpoints of storage and Key Vault', () => {
    const main = model('main.bicep');
    expect(main.params.get('networkIsolation')?.defaultText).toBe('false');
    const network = only(main.modules.filter((m) => m.symbol === 'network'));
    expect(network.condition).toBe('(networkIsolation)');
    for (const symbol of ['storage', 'keyVault']) {
      const call = only(main.modules.filter((m) => m.symbol === symbol));
      expect(textAt(call, 'params.publicNetworkAccess')).toBe('!networkIsolation');
    }
    const functionApp = only(main.modules.filter((m) => m.symbol === 'functionApp'));
    expect(textAt(functionApp, 'params.virtualNetworkSubnetId')).toBe(
      "networkIsolation ? network!.outputs.appSubnetId : ''",
    );
    const storage = only(resourcesOf('modules/storage.bicep', 'Microsoft.Storage/storageAccounts'));
    expect(textAt(storage, 'properties.publicNetworkAccess')).toBe("publicNetworkAccess ? 'Enabled' : 'Disabled'");
    expect(textAt(storage, 'properties.networkAcls.defaultAction')).toBe("publicNetworkAccess ? 'Allow' : 'Deny'");
  });

  it('delegates the integration subnet to Microsoft.App/environments (Flex Consumption)', () => {
    const vnet = only(resourcesOf('modules/network.bicep', 'Microsoft.Network/virtualNetworks'));
    expect(textAt(vnet, 'properties.subnets')).toContain("serviceName: 'Microsoft.App/environments'");
    const site = only(resourcesOf('modules/functionApp.bicep', 'Microsoft.Web/sites'));
    expect(textAt(site, 'properties.virtualNetworkSubnetId')).toBe(
      'empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId',
    );
  });

  it('has private endpoints for blob, queue, table and vault, each with its private DNS zone', () => {
    const endpoints = model('modules/network.bicep').vars.get('endpoints');
    expect(endpoints?.type).toBe('array');
    const rows = endpoints!.namedChildren.filter((n) => n?.type === 'object').map((n) => n!);
    const byGroup = new Map(rows.map((row) => [stringText(propertyPath(row, 'groupId')!), row]));
    expect([...byGroup.keys()].sort()).toEqual(['blob', 'queue', 'table', 'vault']);
    expect(propertyPath(byGroup.get('blob')!, 'zone')?.text).toBe(
      "'privatelink.blob.${environment().suffixes.storage}'",
    );
    expect(propertyPath(byGroup.get('vault')!, 'zone')?.text).toContain('.vaultcore.');
    expect(propertyPath(byGroup.get('vault')!, 'targetId')?.text).toBe('keyVaultId');
    for (const type of [
      'Microsoft.Network/privateEndpoints',
      'Microsoft.Network/privateDnsZones',
      'Microsoft.Network/privateDnsZones/virtualNetworkLinks',
      'Microsoft.Network/privateEndpoints/privateDnsZoneGroups',
    ]) {
      expect(only(resourcesOf('modules/network.bicep', type)).valueText).toMatch(/^\[\s*for \(?endpoint/);
    }
  });
});

describe("infra/README.md's lists", () => {
  const readme = () => readFileSync(path.join(INFRA, 'README.md'), 'utf8');
  const backticked = (text: string) => [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1]);

  it('"What gets deployed" names exactly the containers, tables and queues of storageLayout', () => {
    const layout = model('main.bicep').vars.get('storageLayout')!;
    const paragraph = /^- \*\*Storage account\*\*:([\s\S]*?)^- \*\*/m.exec(readme())?.[1] ?? '';
    const part = (from: string, to: string) => {
      const match = new RegExp(`${from}([\\s\\S]*?)${to}`).exec(paragraph);
      expect([from, match !== null]).toEqual([from, true]);
      // Names only: drop the parenthesised explanations, which hold backticked names of their own.
      return backticked(match![1].replace(/\([^)]*\)/g, ''));
    };
    expect(part('Blob containers', '; tables')).toEqual([
      stringText(propertyPath(layout, 'deploymentContainer')!),
      ...stringElements(propertyPath(layout, 'containers')!),
    ]);
    expect(part('; tables', '; queues')).toEqual(stringElements(propertyPath(layout, 'tables')!));
    expect(part('; queues', 'all named')).toEqual(stringElements(propertyPath(layout, 'queues')!));
  });

  it('the app settings table names every setting main.bicep gives the app', () => {
    const section = /^## App settings\n([\s\S]*?)^## /m.exec(readme())?.[1] ?? '';
    const documented = new Set<string>();
    for (const row of section.split('\n').filter((line) => line.startsWith('| `'))) {
      let prefix = '';
      for (const name of backticked(row.split('|')[1])) {
        // `AzureWebJobsStorage__accountName`, `__credential`: the short form keeps the previous name's prefix.
        const full = name.startsWith('__') ? `${prefix}${name}` : name.replace(/ \(.*$/, '');
        if (full.includes('__')) prefix = full.slice(0, full.indexOf('__'));
        documented.add(full);
      }
    }
    const settings = propertyNames(model('main.bicep').vars.get('appSettings')!);
    expect(settings.length).toBeGreaterThan(20);
    expect(settings.filter((name) => !documented.has(name))).toEqual([]);
  });
});

describe('storage layout', () => {
  it('is one list in main.bicep that the storage module creates', () => {
    const layout = model('main.bicep').vars.get('storageLayout');
    expect(layout).toBeDefined();
    expect(stringElements(propertyPath(layout!, 'tables')!)).toEqual(
      expect.arrayContaining(['idempotency', 'subscriptions', 'publishedEvents']),
    );
    expect(stringElements(propertyPath(layout!, 'queues')!)).toEqual(
      expect.arrayContaining(['graph-notifications', 'mail-events']),
    );
    const storage = only(model('main.bicep').modules.filter((m) => m.symbol === 'storage'));
    expect(textAt(storage, 'params.tableNames')).toBe('storageLayout.tables');
    expect(textAt(storage, 'params.queueNames')).toBe('storageLayout.queues');
  });
});

describe('first deployments and redeployments (infra/README.md)', () => {
  const readme = () => readFileSync(path.join(INFRA, 'README.md'), 'utf8');
  const section = (heading: string): string => {
    const text = readme();
    const start = text.indexOf(`\n${heading}\n`);
    expect([heading, start >= 0]).toEqual([heading, true]);
    const rest = text.slice(start + heading.length + 2);
    const next = /^#{2,3} /m.exec(rest);
    return next ? rest.slice(0, next.index) : rest;
  };

  it('tells to register Microsoft.App (the subnet delegation needs it) in the prerequisites and network isolation', () => {
    expect(only(resourcesOf('modules/network.bicep', 'Microsoft.Network/virtualNetworks')).body.text).toContain(
      "'Microsoft.App/environments'",
    );
    // The template deploys no Microsoft.App resource, so ARM would not register the provider by itself.
    const deployed = [...models.values()].flatMap((m) => m.resources.map((r) => r.target));
    expect(deployed.filter((t) => t.startsWith('Microsoft.App/'))).toEqual([]);
    for (const heading of ['## Prerequisites', '### Network isolation (optional)']) {
      expect([heading, section(heading)]).toEqual([
        heading,
        expect.stringContaining('az provider register -n Microsoft.App --wait'),
      ]);
    }
  });

  it('offers a way out when the soft-deleted Key Vault still holds its derived name: recover it, or keyVaultName', () => {
    const main = model('main.bicep');
    expect(main.params.get('keyVaultName')?.defaultText).toBe("''");
    expect(propertyPath(main.vars.get('names')!, 'keyVault')?.text).toMatch(
      /^empty\(keyVaultName\) \? .+ : keyVaultName$/,
    );
    const call = only(main.modules.filter((m) => m.symbol === 'keyVault'));
    expect(textAt(call, 'params.name')).toBe('names.keyVault');
    const redeploy = section('### Redeploying after deleting the resource group');
    expect(redeploy).toContain('az keyvault recover --name <vault name>');
    expect(redeploy).toContain('-p keyVaultName=');
    expect(redeploy).toMatch(/purge protection/);
  });
});
