/**
 * Every field of an official YAML, honoured or named: the notes of the Lightning sections (lib/config/lightning.ts)
 * with those of the `model` section (the declared config tables of the tokenizer, its loss and trainer, and the
 * transformer), and the one warning a training run gives (global rank 0 only) naming the fields it does not apply
 * and what happens instead, with trainer.devices / trainer.num_nodes compared to the world actually launched.
 */
import { UNKNOWN_FIELD, type FieldNote } from '../config/lightning.js';
import type { RunSettings } from '../config/read_config.js';
import { DDCONFIG_FIELDS, IBQ_QUANTIZER_FIELDS, VQ_QUANTIZER_FIELDS } from '../tokenizer/config_fields.js';
import { LOSS_CONFIG_FIELDS, TOKENIZER_TRAINER_FIELDS } from '../tokenizer/training_fields.js';
import { TRANSFORMER_FIELDS } from '../transformer/config_fields.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Tokenizer init_args read outside the declared tables (trainTokenizer), and what the unread ones mean. */
const TOKENIZER_EXTRA: Record<string, string | null> = {
  warmup_epochs: null, ddconfig: null, lossconfig: null, l2_normalize: null,
  resume_lr: 'a resumed run continues the checkpoint\'s learning-rate schedule',
  ckpt_path: 'start from weights with --init (the init option), or resume with ckpt_path / --resume',
  ignore_keys: 'loading skips the keys that are not the model\'s and lists them',
  image_key: 'batches are the decoded images',
  colorize_nlabels: 'images have 3 channels',
  monitor: 'ModelCheckpoint.monitor selects checkpoints',
  stage: 'the tokenizer trains as one stage',
};
const AR_FIELDS = new Set(['learning_rate', 'weight_decay', 'wp', 'wp0', 'wpe', 'twde', 'transformer_config', 'first_stage_config', 'cond_stage_config']);
const AR_EXTRA: Record<string, string> = {
  first_stage_key: 'batches are token maps of the image folder (or --tokens)',
  cond_stage_key: 'labels come from the class sub-folders (or the labels of --tokens)',
  permuter_config: 'tokens are in raster order (h x w)',
  ckpt_path: 'resume with ckpt_path at the top level or --resume',
  ignore_keys: 'loading skips the keys that are not the model\'s and lists them',
  pkeep: 'token_drop of transformer_config.params drops tokens',
  sos_token: 'the class token starts each sequence',
  unconditional: 'training is class-conditional (class_dropout_prob gives guidance)',
};

function tableNotes(obj: unknown, table: object, where: string): FieldNote[] {
  if (!isObj(obj)) return [];
  return Object.keys(obj).map((k) => (k in table ? { path: `${where}.${k}` } : { path: `${where}.${k}`, instead: UNKNOWN_FIELD }));
}

function tokenizerNotes(a: Obj, where: string, training: boolean): FieldNote[] {
  const notes: FieldNote[] = [];
  for (const k of Object.keys(a)) {
    const p = `${where}.${k}`;
    if (k in IBQ_QUANTIZER_FIELDS || (training && k in TOKENIZER_TRAINER_FIELDS) || (k in VQ_QUANTIZER_FIELDS && k === 'l2_normalize')) notes.push({ path: p });
    else if (k in TOKENIZER_EXTRA) {
      const note = TOKENIZER_EXTRA[k];
      if (!training && (k === 'lossconfig' || k === 'warmup_epochs' || k === 'resume_lr' || k in TOKENIZER_TRAINER_FIELDS)) {
        notes.push({ path: p, instead: 'the frozen tokenizer is not trained here' });
      } else notes.push(note === null || (k === 'resume_lr' && a[k] === null) ? { path: p } : { path: p, instead: note });
    } else if (!training && k in TOKENIZER_TRAINER_FIELDS) notes.push({ path: p, instead: 'the frozen tokenizer is not trained here' });
    else notes.push({ path: p, instead: UNKNOWN_FIELD });
  }
  notes.push(...tableNotes(a.ddconfig, DDCONFIG_FIELDS, `${where}.ddconfig`));
  const lc = a.lossconfig;
  if (training && isObj(lc)) {
    for (const k of Object.keys(lc)) {
      if (k === 'params') notes.push(...tableNotes(lc.params, LOSS_CONFIG_FIELDS, `${where}.lossconfig.params`));
      else notes.push(k === 'target' ? { path: `${where}.lossconfig.target`, instead: 'the loss is VQLPIPSWithDiscriminator' } : { path: `${where}.lossconfig.${k}`, instead: UNKNOWN_FIELD });
    }
  }
  return notes;
}

/** Notes for every field of the `model` section. */
export function modelFieldNotes(raw: unknown): FieldNote[] {
  const m = isObj(raw) && isObj(raw.model) ? raw.model : {};
  const notes: FieldNote[] = [];
  for (const k of Object.keys(m)) if (k !== 'init_args') notes.push(k === 'class_path' ? { path: 'model.class_path' } : { path: `model.${k}`, instead: UNKNOWN_FIELD });
  const a = isObj(m.init_args) ? m.init_args : {};
  if (!('transformer_config' in a)) return [...notes, ...tokenizerNotes(a, 'model.init_args', true)];
  for (const k of Object.keys(a)) {
    const p = `model.init_args.${k}`;
    if (AR_FIELDS.has(k)) {
      if (k === 'cond_stage_config') continue;
      if (k === 'transformer_config' || k === 'first_stage_config') {
        const sec = a[k] as Obj;
        for (const s of Object.keys(isObj(sec) ? sec : {})) {
          if (s === 'target') notes.push({ path: `${p}.target`, instead: k === 'transformer_config' ? 'the model is the Llama-AdaLN GPT' : 'the first stage is the IBQ tokenizer' });
          else if (s !== 'params') notes.push({ path: `${p}.${s}`, instead: UNKNOWN_FIELD });
        }
        if (k === 'transformer_config') notes.push(...tableNotes((sec as Obj)?.params, TRANSFORMER_FIELDS, `${p}.params`));
        else if (isObj(sec) && isObj(sec.params)) notes.push(...tokenizerNotes(sec.params, `${p}.params`, false));
      } else notes.push({ path: p });
    } else notes.push({ path: p, instead: AR_EXTRA[k] ?? UNKNOWN_FIELD });
  }
  const cond = a.cond_stage_config;
  if (cond !== undefined) {
    notes.push({ path: 'model.init_args.cond_stage_config', instead: 'class ids come from the data (n_classes must equal transformer_config.params.class_num)' });
  }
  return notes;
}

/** Every field of a YAML (read by readConfig) with its note. */
export function yamlFieldNotes(raw: unknown, run: RunSettings | undefined): FieldNote[] {
  return [...(run?.fieldNotes ?? []), ...modelFieldNotes(raw)];
}

/** The launched world as the warning compares it: processes in all and on this node. */
export interface LaunchedWorld {
  worldSize: number;
  localWorldSize: number;
}

/**
 * The one warning of a run: the YAML fields not applied and what happens instead, and trainer.devices /
 * trainer.num_nodes where they disagree with the launched world; undefined when there is nothing to say.
 */
export function notAppliedWarning(raw: unknown, run: RunSettings | undefined, world: LaunchedWorld, extra: FieldNote[] = []): string | undefined {
  const items = [...yamlFieldNotes(raw, run), ...extra].filter((n) => n.instead !== undefined).map((n) => `${n.path} (${n.instead})`);
  const nodes = Math.max(1, Math.round(world.worldSize / world.localWorldSize));
  const wantDevices = run?.devices ?? 1, wantNodes = run?.numNodes ?? 1;
  if ((run?.devices !== undefined && wantDevices !== world.localWorldSize) || (run?.numNodes !== undefined && wantNodes !== nodes)) {
    items.push(`trainer.devices ${wantDevices} / trainer.num_nodes ${wantNodes} (launched: ${world.localWorldSize} process(es) per node on ${nodes} node(s); ` +
      'start them with ibq launch --nproc-per-node N [--nnodes M ...] -- <command>)');
  }
  return items.length > 0 ? `not applied from the YAML: ${items.join('; ')}` : undefined;
}
