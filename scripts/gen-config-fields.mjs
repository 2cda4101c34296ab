#!/usr/bin/env node
// Writes lib/tokenizer/config_fields.ts, lib/tokenizer/training_fields.ts and lib/transformer/config_fields.ts, the TypeScript view of the configs,
// from their one declaration: the C++ for_each_field lists (native/ibq/core/config_field.h), which the built addon
// exports as configFields(). Run it after changing a declaration and rebuilding (`npm run build`, then
// `npm run gen:config-fields`, then `npm run build:ts`); test/config/fields.test.ts fails while a file
// differs from what this script would write.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const TOKENIZER_CONFIGS = [
  {
    key: 'ddconfig', table: 'DDCONFIG_FIELDS', type: 'DDConfig', source: 'native/ibq/tokenizer/vqgan.h (vqgan::DDConfig)',
    title: 'The official `ddconfig` (model.init_args.ddconfig of a tokenizer YAML): the VQGAN Encoder / Decoder arguments.',
  },
  {
    key: 'ibq_quantizer', table: 'IBQ_QUANTIZER_FIELDS', type: 'IBQuantizerOptions', source: 'native/ibq/quantizer/quantizer.h (IBQOptions)',
    title: 'The IBQ quantizer arguments (official IndexPropagationQuantize; n_e / e_dim there are n_embed / embed_dim), as ' +
      'model.init_args of a tokenizer YAML names them.',
  },
  {
    key: 'vq_quantizer', table: 'VQ_QUANTIZER_FIELDS', type: 'VectorQuantizerOptions', source: 'native/ibq/quantizer/vq_quantizer.h (VQOptions)',
    title: 'The VQ baseline arguments (official VectorQuantizer2; n_e / e_dim there are n_embed / embed_dim).',
  },
];

const TOKENIZER_TRAINING_CONFIGS = [
  {
    key: 'lossconfig', table: 'LOSS_CONFIG_FIELDS', type: 'LossConfig', source: 'native/ibq/tokenizer/vq_loss.h (VQLossOptions)',
    title: 'lossconfig.params of a tokenizer YAML: the official VQLPIPSWithDiscriminator arguments.',
  },
  {
    key: 'tokenizer_trainer', table: 'TOKENIZER_TRAINER_FIELDS', type: 'TokenizerTrainerFields',
    source: 'native/ibq/tokenizer/tokenizer_trainer.h (TrainerOptions)',
    title: 'Tokenizer training settings: the official model.init_args optimisation fields (warm-up and total length in ' +
      'steps) and the LitEma decay (TokenizerTrainer takes them as camelCase options).',
  },
];

const TRANSFORMER_CONFIGS = [
  {
    key: 'transformer', table: 'TRANSFORMER_FIELDS', type: 'TransformerConfig', source: 'native/ibq/transformer/transformer.h (TransformerConfig)',
    title: 'The official `transformer_config.params` of an AR YAML (GPT.__init__ arguments of ' +
      'src/IBQ/modules/transformer/llama.py), plus class_dropout_prob.',
  },
];

/** The generated files (relative to the package root), what each holds, and its configs in the order written. */
export const FILES = [
  { out: 'lib/tokenizer/config_fields.ts', what: 'The tokenizer model configs (VQGAN, quantizers)', configs: TOKENIZER_CONFIGS },
  { out: 'lib/tokenizer/training_fields.ts', what: 'The tokenizer training configs (losses, trainer)', configs: TOKENIZER_TRAINING_CONFIGS },
  { out: 'lib/transformer/config_fields.ts', what: 'The transformer config', configs: TRANSFORMER_CONFIGS },
];

const quote = (s) => `'${String(s).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** A TypeScript literal of a JSON-like value. */
function literal(v) {
  if (typeof v === 'string') return quote(v);
  if (Array.isArray(v)) return `[${v.map(literal).join(', ')}]`;
  if (v !== null && typeof v === 'object') {
    return `{ ${Object.entries(v).map(([k, x]) => `${/^[A-Za-z_]\w*$/.test(k) ? k : quote(k)}: ${literal(x)}`).join(', ')} }`;
  }
  return String(v);
}

/** Words of `text` in lines of at most `width` characters, each starting with `prefix`. */
function wrap(text, prefix, width = 118) {
  const lines = [];
  let line = '';
  for (const w of text.split(/\s+/)) {
    if (line && prefix.length + line.length + 1 + w.length > width) {
      lines.push(prefix + line);
      line = w;
    } else {
      line = line ? `${line} ${w}` : w;
    }
  }
  if (line) lines.push(prefix + line);
  return lines;
}

/** `key` + the string `text` as a literal, split into concatenated pieces that fit the width, + `end`. */
function stringLines(key, text, indent, end) {
  const pieces = wrap(text, '', 100 - indent.length - key.length);
  const lines = pieces.map((p, i) => `${indent}${i === 0 ? key : ' '.repeat(key.length)}${quote(i < pieces.length - 1 ? p + ' ' : p)}`);
  return lines.map((l, i) => (i < lines.length - 1 ? `${l} +` : `${l}${end}`));
}

function doc(text, indent) {
  const body = wrap(text, `${indent} * `);
  if (body.length === 1 && body[0].length + 4 <= 118) return [`${indent}/** ${body[0].slice(indent.length + 3)} */`];
  return [`${indent}/**`, ...body, `${indent} */`];
}

/** The TypeScript type of a field's values. */
function tsType(f) {
  switch (f.type) {
    case 'bool':
      return 'boolean';
    case 'int':
      return [...Object.keys(f.aliases ?? {}).map(quote), 'number'].join(' | ');
    case 'number':
      return f.nullable ? 'number | null' : 'number';
    case 'string':
      return f.choices ? f.choices.map(quote).join(' | ') : 'string';
    case 'int[]':
      return 'number[]';
  }
  throw new Error(`unknown field type ${f.type}`);
}

function fieldDoc(f) {
  return f.required ? `${f.doc} Required.` : `${f.doc} Default: ${literal(f.default)}.`;
}

/** The text of `file` (an entry of FILES) for configFields() (an object of field tables by config key). */
export function renderConfigFields(file, fields) {
  const out = [
    '/**',
    ...wrap(`${file.what} as declared once in C++ (for_each_field, native/ibq/core/config_field.h): generated by ` +
      "scripts/gen-config-fields.mjs from the addon's configFields(); do not edit. To change a field, change its " +
      'declaration (the header named above each table), rebuild, and run `npm run gen:config-fields`; ' +
      'test/config/fields.test.ts fails while this file differs from the declarations.', ' * '),
    ' */',
    "import type { FieldTable } from '../config/fields.js';",
  ];
  for (const c of file.configs) {
    const table = fields[c.key];
    if (!table) throw new Error(`configFields() has no '${c.key}'`);
    const entries = Object.entries(table);
    out.push('', ...doc(`${c.title} Declared in ${c.source}.`, ''), `export const ${c.table} = {`);
    for (const [name, f] of entries) {
      const { doc: text, ...rest } = f;
      out.push(`  ${name}: {`, ...stringLines('doc: ', text, '    ', ','), `    ${literal(rest).slice(2, -2)},`, '  },');
    }
    out.push('} as const satisfies FieldTable;');
    out.push('', ...doc(c.title, ''), `export interface ${c.type} {`);
    for (const [name, f] of entries) out.push(...doc(fieldDoc(f), '  '), `  ${name}${f.required ? '' : '?'}: ${tsType(f)};`);
    out.push('}');
    out.push('', ...doc(`${c.type} with the defaults filled in (fields not of the official module stay absent when not given).`, ''),
      `export interface Resolved${c.type} {`);
    for (const [name, f] of entries) out.push(`  ${name}${f.optional ? '?' : ''}: ${tsType(f)};`);
    out.push('}');
  }
  return out.join('\n') + '\n';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { native } = await import('../dist/native.js');
  const root = fileURLToPath(new URL('..', import.meta.url));
  for (const file of FILES) {
    writeFileSync(root + file.out, renderConfigFields(file, native.configFields()));
    console.log(`wrote ${file.out}`);
  }
}
