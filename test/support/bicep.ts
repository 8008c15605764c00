/**
 * Reads Bicep files with the tree-sitter Bicep grammar (npm `tree-sitter-bicep`, run by `web-tree-sitter` from its
 * WebAssembly build, so nothing is compiled or downloaded): syntax errors with file:line:column, and a small model of
 * a file (parameters, variables, resources, modules) for the checks the Bicep CLI would make if it could run here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Language, type Node, Parser } from 'web-tree-sitter';

let parserPromise: Promise<Parser> | undefined;

/** A parser for Bicep, loaded once per process. */
export function bicepParser(): Promise<Parser> {
  parserPromise ??= (async () => {
    await Parser.init();
    // Bytes rather than a path: given a path, the library reads it through a dynamic import() that Jest's module
    // sandbox refuses.
    const wasm = readFileSync(require.resolve('tree-sitter-bicep/tree-sitter-bicep.wasm'));
    const language = await Language.load(new Uint8Array(wasm.buffer, wasm.byteOffset, wasm.byteLength));
    const parser = new Parser();
    parser.setLanguage(language);
    return parser;
  })();
  return parserPromise;
}

const EXTENSION_STATEMENT = /^(\s*)extension\s+([A-Za-z_][A-Za-z0-9_]*|'[^'\r\n]*')(.*)$/;

/** The result of reading one Bicep source. */
export interface ParsedBicep {
  readonly root: Node;
  /** Names or references after each `extension` statement (aliases as written, without quotes). */
  readonly extensions: readonly string[];
}

/**
 * Parses Bicep source. The grammar predates the `extension` keyword (Bicep 0.30 renamed `provider` to `extension`),
 * so an `extension <alias-or-'ref'> [with ...] [as ...]` line is read as the same statement spelled with the older
 * keyword, `provider '<alias-or-ref>' ...`; line numbers are unchanged and anything malformed after it still fails.
 */
export async function parseBicep(source: string): Promise<ParsedBicep> {
  const extensions: string[] = [];
  const rewritten = source
    .split('\n')
    .map((line) => {
      const match = EXTENSION_STATEMENT.exec(line);
      if (!match) return line;
      const target = match[2].startsWith("'") ? match[2].slice(1, -1) : match[2];
      extensions.push(target);
      return `${match[1]}provider '${target}'${match[3]}`;
    })
    .join('\n');
  const tree = (await bicepParser()).parse(rewritten);
  if (!tree) throw new Error('tree-sitter returned no tree');
  return { root: tree.rootNode, extensions };
}

/** One syntax problem: 1-based line and column, and what the grammar found. */
export interface BicepSyntaxError {
  readonly line: number;
  readonly column: number;
  readonly message: string;
}

/** Every ERROR and MISSING node of a tree, outermost first, in source order. */
export function syntaxErrors(root: Node): BicepSyntaxError[] {
  const errors: BicepSyntaxError[] = [];
  const visit = (node: Node): void => {
    if (node.isMissing || node.isError) {
      const text = node.text.split('\n')[0].slice(0, 60);
      errors.push({
        line: node.startPosition.row + 1,
        column: node.startPosition.column + 1,
        message: node.isMissing ? `missing ${node.type}` : `unexpected ${JSON.stringify(text)}`,
      });
      if (node.isMissing) return;
    }
    if (!node.hasError && !node.isError) return;
    for (const child of node.children) if (child) visit(child);
  };
  visit(root);
  return errors;
}

/** Every `*.bicep` file under `dir`, sorted, as absolute paths. */
export function findBicepFiles(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...findBicepFiles(full));
    else if (entry.name.endsWith('.bicep')) found.push(full);
  }
  return found.sort();
}

/** A `param` declaration. */
export interface BicepParam {
  readonly name: string;
  readonly type: string;
  /** Source text of the default value; undefined when the parameter is required. */
  readonly defaultText: string | undefined;
  /** Values of `@allowed([...])`, as source text; undefined without the decorator. */
  readonly allowed: string[] | undefined;
  /** Argument of `@minValue(...)`, as source text; undefined without the decorator. */
  readonly minValue: string | undefined;
  /** Argument of `@maxValue(...)`, as source text; undefined without the decorator. */
  readonly maxValue: string | undefined;
}

/** A `resource` or `module` declaration. */
export interface BicepDeclaration {
  readonly symbol: string;
  /** `'Type@version'` for resources, the module path for modules (without quotes). */
  readonly target: string;
  /** The body object (inside any `if` or `for`). */
  readonly body: Node;
  /** Source text of the `if (...)` condition, when there is one. */
  readonly condition: string | undefined;
  /** Source text of the whole value (to see loops and conditions). */
  readonly valueText: string;
}

/** What the checks need from one Bicep file. */
export interface BicepModel {
  readonly file: string;
  readonly parsed: ParsedBicep;
  readonly params: ReadonlyMap<string, BicepParam>;
  readonly vars: ReadonlyMap<string, Node>;
  readonly resources: readonly BicepDeclaration[];
  readonly modules: readonly BicepDeclaration[];
}

/** Reads a Bicep file into a `BicepModel`; throws naming file:line when it has syntax errors. */
export async function readBicepModel(file: string): Promise<BicepModel> {
  const parsed = await parseBicep(readFileSync(file, 'utf8'));
  const errors = syntaxErrors(parsed.root);
  if (errors.length > 0) {
    throw new Error(errors.map((e) => `${file}:${e.line}:${e.column}: ${e.message}`).join('\n'));
  }
  const params = new Map<string, BicepParam>();
  const vars = new Map<string, Node>();
  const resources: BicepDeclaration[] = [];
  const modules: BicepDeclaration[] = [];
  let pendingDecorators: Node[] = [];
  for (const statement of parsed.root.namedChildren) {
    if (!statement) continue;
    if (statement.type === 'decorators') {
      pendingDecorators.push(...statement.namedChildren.filter((n): n is Node => n !== null));
      continue;
    }
    const decorators = pendingDecorators;
    pendingDecorators = [];
    const children = statement.namedChildren.filter((n): n is Node => n !== null);
    switch (statement.type) {
      case 'parameter_declaration': {
        const [name, type, value] = children;
        params.set(name.text, {
          name: name.text,
          type: type.text,
          defaultText: value?.text,
          allowed: allowedValues(decorators),
          minValue: decoratorArgument(decorators, 'minValue'),
          maxValue: decoratorArgument(decorators, 'maxValue'),
        });
        break;
      }
      case 'variable_declaration':
        vars.set(children[0].text, children[children.length - 1]);
        break;
      case 'resource_declaration':
      case 'module_declaration': {
        const [symbol, target, value] = children;
        const declaration = {
          symbol: symbol.text,
          target: stringText(target),
          body: bodyOf(value),
          condition: value.type === 'if_statement' ? value.namedChildren[0]?.text : undefined,
          valueText: value.text,
        };
        (statement.type === 'module_declaration' ? modules : resources).push(declaration);
        break;
      }
      default:
        break;
    }
  }
  return { file, parsed, params, vars, resources, modules };
}

function allowedValues(decorators: readonly Node[]): string[] | undefined {
  for (const decorator of decorators) {
    const call = decorator.namedChildren[0];
    if (call?.type !== 'call_expression' || call.childForFieldName('function')?.text !== 'allowed') continue;
    const array = call.childForFieldName('arguments')?.namedChildren[0];
    return array?.namedChildren.filter((n): n is Node => n !== null).map((n) => n.text) ?? [];
  }
  return undefined;
}

function decoratorArgument(decorators: readonly Node[], name: string): string | undefined {
  for (const decorator of decorators) {
    const call = decorator.namedChildren[0];
    if (call?.type !== 'call_expression' || call.childForFieldName('function')?.text !== name) continue;
    return call.childForFieldName('arguments')?.namedChildren[0]?.text;
  }
  return undefined;
}

function bodyOf(value: Node): Node {
  if (value.type === 'object') return value;
  if (value.type === 'if_statement') return bodyOf(value.namedChildren[value.namedChildren.length - 1]!);
  if (value.type === 'for_statement') return bodyOf(value.childForFieldName('body')!);
  throw new Error(`unexpected declaration value ${value.type} at line ${value.startPosition.row + 1}`);
}

/** The text of a string literal without its quotes (interpolations stay as written). */
export function stringText(node: Node): string {
  return node.type === 'string' ? node.text.slice(1, -1) : node.text;
}

/** The value of `key` in an object node (keys quoted or not); undefined when absent. */
export function property(object: Node, key: string): Node | undefined {
  for (const child of object.namedChildren) {
    if (child?.type !== 'object_property') continue;
    const [name, value] = child.namedChildren;
    if (name && value && stringText(name) === key) return value;
  }
  return undefined;
}

/** The value at a dotted path of nested objects (`properties.siteConfig.ftpsState`); undefined when absent. */
export function propertyPath(object: Node, dottedPath: string): Node | undefined {
  let current: Node | undefined = object;
  for (const key of dottedPath.split('.')) {
    if (current?.type !== 'object') return undefined;
    current = property(current, key);
  }
  return current;
}

/** The keys of an object node. */
export function propertyNames(object: Node): string[] {
  return object.namedChildren
    .filter((n): n is Node => n?.type === 'object_property')
    .map((p) => stringText(p.namedChildren[0]!));
}

/** The elements of an array node that are plain string literals, unquoted. */
export function stringElements(array: Node): string[] {
  if (array.type !== 'array') throw new Error(`expected an array, got ${array.type}: ${array.text.slice(0, 60)}`);
  return array.namedChildren
    .filter((n): n is Node => n !== null && n.type !== 'comment')
    .map((n) => {
      if (n.type !== 'string') throw new Error(`not a string literal: ${n.text}`);
      return stringText(n);
    });
}
