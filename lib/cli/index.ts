/**
 * The `ibq` CLI (commander). Each command group lives in its own file exporting `register(program)`;
 * add new groups to GROUPS.
 */
import { Command } from 'commander';

import { watchLauncher } from '../distributed/env.js';
import { register as registerCkpt } from './ckpt.js';
import { register as registerDemo } from './demo.js';
import { register as registerEval } from './eval.js';
import { register as registerInfo } from './info.js';
import { register as registerLaunch } from './launch.js';
import { register as registerShard } from './shard.js';
import { register as registerTokenizer } from './tokenizer.js';
import { register as registerTrain } from './train.js';
import { register as registerTransformer } from './transformer.js';

type Register = (program: Command) => void;
const GROUPS: Register[] = [registerInfo, registerCkpt, registerTokenizer, registerTransformer, registerEval, registerTrain, registerDemo, registerLaunch, registerShard];

export function buildProgram(): Command {
  const program = new Command('ibq')
    .description('IBQ tokenizer and autoregressive generator on libtorch')
    .showHelpAfterError()
    .configureOutput({ outputError: (str, write) => write(str) });
  for (const register of GROUPS) register(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  watchLauncher();
  await buildProgram().parseAsync(argv);
}
