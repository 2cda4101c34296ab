/**
 * The training options an official YAML supplies when the caller leaves them out, for trainTokenizer and
 * trainTransformer alike (and so for the CLI, which calls them): batchSize from data.init_args.batch_size;
 * maxEpochs from trainer.max_epochs when neither maxSteps nor maxEpochs is given.
 */
import type { RunSettings } from '../config/read_config.js';
import type { TrainLoopOptions } from './loop.js';

/** TrainLoopOptions whose batchSize may come from the config. */
export type TrainOptionsFromConfig = Omit<TrainLoopOptions, 'batchSize'> & { batchSize?: number };

/**
 * `opts` with batchSize and maxEpochs filled in from `run` (the YAML's settings; undefined for a preset or a
 * config object). `source` names the config in the error.
 * @throws TypeError naming batchSize when neither the options nor the YAML give one
 */
export function withRunDefaults<T extends TrainOptionsFromConfig>(opts: T, run: RunSettings | undefined, source: string): T & { batchSize: number } {
  if (!opts || typeof opts !== 'object') return opts as T & { batchSize: number }; // loopSettings names the problem
  const batchSize = opts.batchSize ?? run?.batchSize;
  if (batchSize === undefined) {
    throw new TypeError(`batchSize: expected an integer >= 1 (${source} has no data.init_args.batch_size to default to)`);
  }
  const maxEpochs = opts.maxEpochs ?? (opts.maxSteps === undefined ? run?.maxEpochs : undefined);
  return { ...opts, batchSize, maxEpochs };
}
