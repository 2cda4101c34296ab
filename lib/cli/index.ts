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
import { register as registerServe } from './serve.js';
import { register as registerShard } from './shard.js';
import { register as registerTokenizer } from './tokenizer.js';
import { register as registerTrain } from './train.js';
import { register as registerTransformer } from './transformer.js';
import { intArg } from './parse.js';

type Register = (program: Command) => void;
const GROUPS: Register[] = [registerInfo, registerCkpt, registerTokenizer, registerTransformer, registerEval, registerTrain, registerDemo, registerLaunch, registerServe, registerShard];

export function buildProgram(): Command {
  const program = new Command('ibq')
    .description('IBQ tokenizer and autoregressive generator on libtorch')
    .showHelpAfterError()
    .configureOutput({ outputError: (str, write) => write(str) })
    .configureHelp({ showGlobalOptions: true })
    .option('--threads <n>', 'intra-op threads of every native call (default: the CPUs this process may use; `ibq info`)', intArg('--threads', 1, 1024));
  // every command takes --threads (before or after its name); `launch` passes it on to its ranks instead
  program.hook('preAction', async (_program, command) => {
    const threads = (program.opts() as { threads?: number }).threads;
    if (threads === undefined || command.name() === 'launch') return;
    const { setNumThreads } = await import('../core/info.js');
    setNumThreads(threads);
  });
  for (const register of GROUPS) register(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  watchLauncher();
  await buildProgram().parseAsync(argv);
}
