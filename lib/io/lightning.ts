/**
 * The top-level entries of a Lightning checkpoint that both trainers write beside their weights and optimizer
 * states, so that tools reading Lightning checkpoints accept ours: `pytorch-lightning_version`, `loops` (the fit
 * loop's count of optimizer steps), `callbacks` (the ModelCheckpoint states, keyed as Lightning keys them; the
 * run adds them) and `lr_schedulers`.
 */

/** The Lightning release whose checkpoint layout these files follow. */
export const LIGHTNING_VERSION = '2.1.2';

/** Entries for a checkpoint taken after `globalStep` optimizer updates. */
export function lightningEntries(globalStep: number, lrSchedulers: unknown[] = []): Record<string, unknown> {
  return {
    'pytorch-lightning_version': LIGHTNING_VERSION,
    loops: { fit_loop: { 'epoch_loop.state_dict': { _batches_that_stepped: globalStep } } },
    callbacks: {},
    lr_schedulers: lrSchedulers,
  };
}
