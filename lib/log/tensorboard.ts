/**
 * TensorBoard event files, as Lightning's TensorBoardLogger lays them out: `<saveDir>/<name>/version_<N>/`
 * (`<saveDir>/version_<N>` for an empty name; a string version names the folder) holding
 * `events.out.tfevents.<seconds>.<host>.<pid>.0` and `hparams.yaml`.
 *
 * An event file is a sequence of records: the payload's length (uint64, little-endian), the masked CRC32C of
 * those 8 bytes (uint32 LE), the payload, its masked CRC32C (mask: rotate right by 15, add 0xa282ead8). Each
 * payload is a serialized `tensorflow.Event` (event.proto): wall_time 1 (double), step 2 (int64), file_version 3
 * (the first record: 'brain.Event:2'), summary 5. A `Summary` (summary.proto) holds values: tag 1, simple_value 2
 * (float), image 4 (height 1, width 2, colorspace 3, encoded_image_string 4: PNG), metadata 9 (plugin_data 1:
 * plugin_name 1, content 2). Hyper-parameters use the hparams plugin (tensorboard/plugins/hparams): values tagged
 * `_hparams_/experiment`, `_hparams_/session_start_info` and `_hparams_/session_end_info` whose metadata content
 * is an HParamsPluginData (version 1, experiment 2, session_start_info 3, session_end_info 4). The message
 * layouts below are declared from those public field numbers; protobufjs encodes them and @node-rs/crc32 gives
 * the CRC32C.
 */
import { crc32c } from '@node-rs/crc32';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { appendFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { stringify } from 'yaml';

const SCHEMA = {
  nested: {
    Event: { fields: { wall_time: { type: 'double', id: 1 }, step: { type: 'int64', id: 2 }, file_version: { type: 'string', id: 3 }, summary: { type: 'Summary', id: 5 } } },
    Summary: {
      fields: { value: { rule: 'repeated', type: 'Value', id: 1 } },
      nested: {
        Image: { fields: { height: { type: 'int32', id: 1 }, width: { type: 'int32', id: 2 }, colorspace: { type: 'int32', id: 3 }, encoded_image_string: { type: 'bytes', id: 4 } } },
        Value: { fields: { tag: { type: 'string', id: 1 }, simple_value: { type: 'float', id: 2 }, image: { type: 'Image', id: 4 }, metadata: { type: 'SummaryMetadata', id: 9 } } },
      },
    },
    SummaryMetadata: {
      fields: { plugin_data: { type: 'PluginData', id: 1 }, display_name: { type: 'string', id: 2 }, summary_description: { type: 'string', id: 3 } },
      nested: { PluginData: { fields: { plugin_name: { type: 'string', id: 1 }, content: { type: 'bytes', id: 2 } } } },
    },
    // google.protobuf.Value (struct.proto), only the kinds hyper-parameters take
    PbValue: {
      oneofs: { kind: { oneof: ['number_value', 'string_value', 'bool_value'] } },
      fields: { number_value: { type: 'double', id: 2 }, string_value: { type: 'string', id: 3 }, bool_value: { type: 'bool', id: 4 } },
    },
    HParamInfo: { fields: { name: { type: 'string', id: 1 }, type: { type: 'int32', id: 4 } } },
    Experiment: { fields: { time_created_secs: { type: 'double', id: 3 }, hparam_infos: { rule: 'repeated', type: 'HParamInfo', id: 4 } } },
    SessionStartInfo: { fields: { hparams: { keyType: 'string', type: 'PbValue', id: 1 }, start_time_secs: { type: 'double', id: 5 } } },
    SessionEndInfo: { fields: { status: { type: 'int32', id: 1 }, end_time_secs: { type: 'double', id: 2 } } },
    HParamsPluginData: {
      fields: {
        version: { type: 'int32', id: 1 }, experiment: { type: 'Experiment', id: 2 },
        session_start_info: { type: 'SessionStartInfo', id: 3 }, session_end_info: { type: 'SessionEndInfo', id: 4 },
      },
    },
  },
};
const root = protobuf.Root.fromJSON(SCHEMA);
const EventType = root.lookupType('Event');
const HParamsType = root.lookupType('HParamsPluginData');

/** The masked CRC32C of TFRecord framing. */
export function maskedCrc32c(data: Uint8Array): number {
  const c = crc32c(Buffer.from(data.buffer, data.byteOffset, data.byteLength)) >>> 0;
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord: length, its masked CRC, the payload, its masked CRC. */
export function tfRecord(payload: Uint8Array): Buffer {
  const head = Buffer.alloc(12);
  head.writeBigUInt64LE(BigInt(payload.length), 0);
  head.writeUInt32LE(maskedCrc32c(head.subarray(0, 8)), 8);
  const tail = Buffer.alloc(4);
  tail.writeUInt32LE(maskedCrc32c(payload), 0);
  return Buffer.concat([head, payload, tail]);
}

/**
 * The log folder Lightning's TensorBoardLogger would use: `<saveDir>/<name>/<version>`; an absent version takes
 * the next `version_N` after the highest existing one (0 in a new folder).
 */
export function tensorboardLogDir(o: { saveDir: string; name: string; version?: number | string }): string {
  const base = o.name ? join(o.saveDir, o.name) : o.saveDir;
  let v = o.version;
  if (v === undefined) {
    const taken = existsSync(base) ? readdirSync(base).map((f) => /^version_(\d+)$/.exec(f)?.[1]).filter((x): x is string => x !== undefined).map(Number) : [];
    v = taken.length > 0 ? Math.max(...taken) + 1 : 0;
  }
  return join(base, typeof v === 'number' ? `version_${v}` : v);
}

type HParam = number | string | boolean;

/** Writes one event file (global rank 0 of a run); writes are appended in call order. */
export class TensorBoardWriter {
  readonly logDir: string;
  readonly file: string;
  #chain: Promise<void>;

  /** Creates `logDir` and the event file with its file_version record. */
  constructor(logDir: string) {
    this.logDir = logDir;
    mkdirSync(logDir, { recursive: true });
    const now = Date.now() / 1000;
    this.file = join(logDir, `events.out.tfevents.${Math.floor(now)}.${hostname()}.${process.pid}.0`);
    this.#chain = writeFile(this.file, this.#event({ wall_time: now, step: 0, file_version: 'brain.Event:2' }));
  }

  #event(e: Record<string, unknown>): Buffer {
    return tfRecord(EventType.encode(EventType.fromObject(e)).finish());
  }

  #append(step: number, values: Record<string, unknown>[]): Promise<void> {
    const rec = this.#event({ wall_time: Date.now() / 1000, step, summary: { value: values } });
    this.#chain = this.#chain.then(() => appendFile(this.file, rec));
    return this.#chain;
  }

  /** Scalars at `step` (tag -> value; non-finite values are written as they are). */
  scalars(step: number, values: Record<string, number>): Promise<void> {
    const list = Object.entries(values).filter(([, v]) => typeof v === 'number').map(([tag, v]) => ({ tag, simple_value: v }));
    return list.length > 0 ? this.#append(step, list) : this.#chain;
  }

  /** A PNG image at `step` (its size read from the PNG header). */
  image(step: number, tag: string, png: Buffer): Promise<void> {
    if (png.length < 24 || png.readUInt32BE(12) !== 0x49484452) throw new TypeError(`png: expected PNG bytes for ${tag}`);
    const width = png.readUInt32BE(16), height = png.readUInt32BE(20);
    return this.#append(step, [{ tag, image: { height, width, colorspace: 3, encoded_image_string: png } }]);
  }

  /**
   * Hyper-parameters (flattened 'a/b' keys; numbers, strings and booleans; others as JSON strings) as the
   * hparams plugin reads them, and `hparams.yaml` (the nested values) in the log folder as Lightning writes it.
   */
  async hparams(values: Record<string, unknown>): Promise<void> {
    const flat: Record<string, HParam> = {};
    const walk = (v: unknown, key: string) => {
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) for (const [k, x] of Object.entries(v)) walk(x, key ? `${key}/${k}` : k);
      else if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') flat[key] = v;
      else flat[key] = JSON.stringify(v ?? null);
    };
    walk(values, '');
    const pb = (v: HParam) => (typeof v === 'number' ? { number_value: v } : typeof v === 'boolean' ? { bool_value: v } : { string_value: v });
    const now = Date.now() / 1000;
    const infos = Object.entries(flat).map(([name, v]) => ({ name, type: typeof v === 'number' ? 3 : typeof v === 'boolean' ? 2 : 1 }));
    const plugin = (data: Record<string, unknown>) => ({
      plugin_data: { plugin_name: 'hparams', content: HParamsType.encode(HParamsType.fromObject({ version: 0, ...data })).finish() },
    });
    await this.#append(0, [{ tag: '_hparams_/experiment', metadata: plugin({ experiment: { time_created_secs: now, hparam_infos: infos } }) }]);
    await this.#append(0, [{
      tag: '_hparams_/session_start_info',
      metadata: plugin({ session_start_info: { hparams: Object.fromEntries(Object.entries(flat).map(([k, v]) => [k, pb(v)])), start_time_secs: now } }),
    }]);
    await this.#append(0, [{ tag: '_hparams_/session_end_info', metadata: plugin({ session_end_info: { status: 1, end_time_secs: now } }) }]);
    await writeFile(join(this.logDir, 'hparams.yaml'), stringify(values));
  }

  /** Resolves when everything written so far is in the file. */
  flush(): Promise<void> {
    return this.#chain;
  }
}
