/**
 * The defaults the documents state are the ones the gateway applies ({@link DEFAULTS} in config.ts): the README's
 * settings table, `local.settings.sample.json`, and infra/'s parameters and their table. Documents cannot read the
 * table, so this holds them to it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULTS } from '../../shared/platform/config';
import { appRoot } from '../../shared/platform/packageInfo';

const ROOT = appRoot();
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const defaults = Object.entries(DEFAULTS).map(([name, rule]) => ({ name, value: String(rule.value), rule }));
/** Follows `grantMailPermissionsTenantWide` in infra/, as its description and table say. */
const INFRA_DERIVED = new Set(['GRAPH_PERMISSION_CHECK']);

/** The Markdown table row of the document that starts with `first` in backticks. */
function tableRow(markdown: string, first: string): string | undefined {
  return markdown.split('\n').find((line) => line.startsWith(`| \`${first}\``));
}

it.each(defaults)('the README states the default of $name', ({ name, value }) => {
  const row = tableRow(read('README.md'), name);
  expect(row).toBeDefined();
  const literal = value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // "(default 48", "default `0 0 * * * *`" or "`global` (default)"; a longer number is another value.
  const stated = new RegExp(`default ${literal}(?!\\d|[.,]\\d)|default \`${literal}\`|\`${literal}\` \\(default\\)`);
  expect([name, row]).toEqual([name, expect.stringMatching(stated)]);
});

it('local.settings.sample.json sets each setting that has a default to it', () => {
  const sample = JSON.parse(read('local.settings.sample.json')) as { Values: Record<string, string> };
  for (const { name, value } of defaults) expect([name, sample.Values[name]]).toEqual([name, value]);
});

describe.each(defaults.filter((d) => !INFRA_DERIVED.has(d.name)))(
  'infra/ parameter of $name',
  ({ name, value, rule }) => {
    /** The parameter main.bicep describes as setting `name`, with its decorators. */
    function parameter() {
      const bicep = read('infra/main.bicep');
      const start = bicep.indexOf(`@description('${name}:`);
      expect(start).toBeGreaterThanOrEqual(0);
      const block = bicep.slice(start, bicep.indexOf('\n', bicep.indexOf('\nparam ', start) + 1));
      const param = /^param (\w+) (string|int) = (.+)$/m.exec(block);
      expect(param).not.toBeNull();
      return { block, id: param![1], type: param![2], literal: param![3].trim() };
    }

    it('defaults to the same value, in the same range', () => {
      const { block, type, literal } = parameter();
      expect(literal).toBe(type === 'int' ? value : `'${value}'`);
      // Where the template bounds the value, it uses the gateway's bounds: a deployment must not refuse what the app takes.
      const bounds = [/@minValue\((\d+)\)/.exec(block)?.[1], /@maxValue\((\d+)\)/.exec(block)?.[1]];
      if ('min' in rule && bounds.some((b) => b !== undefined)) expect(bounds).toEqual([`${rule.min}`, `${rule.max}`]);
    });

    it("is listed with that default in infra/README.md's table", () => {
      const row = tableRow(read('infra/README.md'), parameter().id);
      expect(row?.split('|')[2].trim()).toBe(`\`${value}\``);
    });
  },
);
