/**
 * The functions as the Functions host would load them (dist/functions, built by `npm test`, through the sandbox's
 * registration capture) and the storage the code opens, held against what infra/ creates and what the README
 * documents: a queue, table or route that exists only in code fails here instead of in Azure.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { LocalFunctionsHost, nodeModuleLoader, type RegisteredFunction, resolveAppSettings } from '../sandbox/host';
import { propertyPath, readBicepModel, stringElements } from '../support/bicep';

const ROOT = path.join(__dirname, '..', '..');

/** Names in `used` that `declared` lacks, each with where it was used. */
function undeclared(used: readonly { name: string; where: string }[], declared: readonly string[]): string[] {
  return used.filter((u) => !declared.includes(u.name)).map((u) => `${u.name} (${u.where})`);
}

/** The storage names main.bicep's storageLayout declares. */
async function storageLayout(): Promise<{ tables: string[]; queues: string[] }> {
  const main = await readBicepModel(path.join(ROOT, 'infra', 'main.bicep'));
  const layout = main.vars.get('storageLayout');
  if (!layout) throw new Error('main.bicep has no storageLayout');
  return {
    tables: stringElements(propertyPath(layout, 'tables')!),
    queues: stringElements(propertyPath(layout, 'queues')!),
  };
}

/**
 * Calls of the storage client factories (shared/platform/storage/storage.ts) in functions/ and shared/, with the name
 * argument resolved by the TypeScript checker to its string literal type. A name the checker cannot pin to a literal
 * is reported as such: the check must see every name.
 */
function storageNamesInCode(): {
  tables: { name: string; where: string }[];
  queues: { name: string; where: string }[];
} {
  const config = ts.getParsedCommandLineOfConfigFile(
    path.join(ROOT, 'tsconfig.build.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  );
  if (!config) throw new Error('tsconfig.build.json could not be read');
  const sources = config.fileNames.filter((f) => /^(functions|shared)[/\\]/.test(path.relative(ROOT, f)));
  const program = ts.createProgram(sources, config.options);
  const checker = program.getTypeChecker();
  const found = { tables: [] as { name: string; where: string }[], queues: [] as { name: string; where: string }[] };
  const factories: Record<string, 'tables' | 'queues'> = { createTableClient: 'tables', createQueueClient: 'queues' };
  for (const file of program.getSourceFiles()) {
    if (!sources.includes(file.fileName)) continue;
    const visit = (node: ts.Node): void => {
      if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text in factories) {
        const { line } = file.getLineAndCharacterOfPosition(node.getStart());
        const where = `${path.relative(ROOT, file.fileName)}:${line + 1}`;
        const nameArg = node.arguments[1];
        const type = nameArg ? checker.getTypeAtLocation(nameArg) : undefined;
        const name = type?.isStringLiteral() ? type.value : `<not a constant: ${nameArg?.getText() ?? 'missing'}>`;
        found[factories[node.expression.text]].push({ name, where });
      }
      ts.forEachChild(node, visit);
    };
    ts.forEachChild(file, visit);
  }
  return found;
}

/** `METHOD /api/route` entries of the README's "HTTP API" section. */
function readmeApi(): string[] {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = /^## HTTP API\n([\s\S]*?)(?=^## )/m.exec(readme);
  if (!section) throw new Error('README.md has no "## HTTP API" section');
  return [...section[1].matchAll(/^\| `([A-Z]+) (\/[^`]+)`/gm)].map((m) => `${m[1]} ${m[2]}`);
}

describe('the functions against infra/ and the README', () => {
  let functions: RegisteredFunction[];
  let routePrefix: string;
  let settings: Record<string, string>;
  let code: ReturnType<typeof storageNamesInCode>;

  beforeAll(async () => {
    // The sample settings resolve any %SETTING% in trigger options, as the Function App's app settings would.
    settings = (
      JSON.parse(readFileSync(path.join(ROOT, 'local.settings.sample.json'), 'utf8')) as {
        Values: Record<string, string>;
      }
    ).Values;
    code = storageNamesInCode();
    // The host exports app settings into Node's own process.env (as the Functions host hands them to its worker);
    // put it back afterwards so nothing leaks into later test files of this worker.
    const realEnv = (nodeModuleLoader().createRequire(__filename)('node:process') as NodeJS.Process).env;
    const savedEnv = { ...realEnv };
    const host = await LocalFunctionsHost.start({
      projectRoot: ROOT,
      port: 0,
      functionKey: 'layout-check-function-key',
      masterKey: 'layout-check-master-key',
      enableTimers: false,
      enableQueues: false,
      appSettings: settings,
      logger: () => undefined,
    });
    try {
      functions = host.functions;
      routePrefix = host.routePrefix;
    } finally {
      await host.stop();
      for (const name of Object.keys(realEnv)) if (!(name in savedEnv)) delete realEnv[name];
      Object.assign(realEnv, savedEnv);
    }
  });

  it('loads the real registrations', () => {
    expect(functions.map((f) => f.name)).toEqual(expect.arrayContaining(['health', 'sendMail', 'diagnostics']));
  });

  it('every queue a function triggers on or writes to exists in storageLayout.queues', async () => {
    const used: { name: string; where: string }[] = [];
    for (const fn of functions) {
      if (fn.triggerType === 'queue') used.push({ name: fn.queueName, where: `${fn.name} trigger` });
      for (const [binding, info] of Object.entries(fn.bindings)) {
        if (info.type === 'queue' && info.direction === 'out' && typeof info.queueName === 'string') {
          const name = resolveAppSettings(info.queueName, settings, `${fn.name} ${binding}`).toLowerCase();
          used.push({ name, where: `${fn.name} output ${binding}` });
        }
      }
    }
    expect(undeclared([...used, ...code.queues], (await storageLayout()).queues)).toEqual([]);
  });

  it('every table the code opens exists in storageLayout.tables', async () => {
    const { tables } = code;
    expect(tables.map((t) => t.name)).toContain('idempotency');
    expect(undeclared(tables, (await storageLayout()).tables)).toEqual([]);
  });

  it("every HTTP route is in the README's API list with its methods, and the list names no other", () => {
    const registered = functions
      .filter((fn): fn is Extract<RegisteredFunction, { triggerType: 'http' }> => fn.triggerType === 'http')
      .flatMap((fn) => (fn.methods ?? ['ANY']).map((method) => `${method} /${routePrefix}/${fn.route}`));
    expect([...readmeApi()].sort()).toEqual([...registered].sort());
  });

  it('the comparison reports what is missing (so the checks above can fail)', () => {
    expect(undeclared([{ name: 'mail-outbox', where: 'sendOutbox trigger' }], ['mail-events'])).toEqual([
      'mail-outbox (sendOutbox trigger)',
    ]);
    expect(undeclared([{ name: 'idempotency', where: 'x' }], ['idempotency'])).toEqual([]);
  });
});
