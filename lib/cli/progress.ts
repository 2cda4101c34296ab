/**
 * CLI plumbing shared by long commands: a cli-progress bar on stderr (drawn only on a terminal) with rate
 * and ETA, and a SIGINT handler that turns the first Ctrl-C into an AbortSignal (a second one kills).
 */
import cliProgress from 'cli-progress';

export interface Bar {
  /** Sets the position (and extra fields shown by the format, e.g. loss). */
  update(value: number, payload?: Record<string, string | number>): void;
  stop(): void;
}

/**
 * A progress bar counting `unit` items up to `total`; `{rate}` (items/s over the run) and `{eta_formatted}`
 * are filled in; extra `fields` are appended as `name value`.
 */
export function progressBar(total: number, unit: string, fields: string[] = []): Bar {
  const extra = fields.map((f) => ` | ${f} {${f}}`).join('');
  const bar = new cliProgress.SingleBar(
    {
      format: `{bar} {value}/{total} ${unit} | {rate} ${unit}/s | ETA {eta_formatted}${extra}`,
      stream: process.stderr,
      hideCursor: true,
      etaBuffer: 50,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  const t0 = performance.now();
  let start: number | undefined;
  const empty = Object.fromEntries(fields.map((f) => [f, '-']));
  bar.start(total, 0, { rate: '-', ...empty });
  return {
    update(value, payload = {}) {
      start ??= value;
      const s = (performance.now() - t0) / 1000;
      const rate = s > 0 ? ((value - start) / s).toFixed(2) : '-';
      bar.update(value, { rate, ...payload });
    },
    stop() {
      bar.stop();
    },
  };
}

/** An AbortController aborted by the first SIGINT (with a note on stderr); `dispose` removes the handler. */
export function sigintAbort(what: string): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  const handler = () => {
    process.stderr.write(`\nibq: interrupted, ${what}… (Ctrl-C again to kill)\n`);
    ac.abort();
  };
  process.once('SIGINT', handler);
  return { signal: ac.signal, dispose: () => process.removeListener('SIGINT', handler) };
}
