/**
 * CLI plumbing shared by long commands: progress on stderr (a cli-progress bar on a terminal; elsewhere — nohup,
 * CI, schedulers — a plain line every `IBQ_PROGRESS_EVERY` seconds, default 30, and at the end) with rate and
 * ETA, and stop signals: the first SIGINT or SIGTERM turns into an AbortSignal (a second one kills), and the
 * command then exits with 128 + the signal number (130, 143).
 */
import cliProgress from 'cli-progress';

export interface Bar {
  /** Sets the position (and extra fields shown by the format, e.g. loss). */
  update(value: number, payload?: Record<string, string | number>): void;
  stop(): void;
}

function seconds(s: number): string {
  if (!Number.isFinite(s)) return '-';
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = Math.round(s % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}

/** Plain progress lines for a stderr that is not a terminal. */
function lineProgress(total: number, unit: string, fields: string[]): Bar {
  const sec = Number(process.env.IBQ_PROGRESS_EVERY ?? 30);
  const every = (Number.isFinite(sec) && sec >= 0 ? sec : 30) * 1000;
  const t0 = performance.now();
  let start: number | undefined;
  let last = -Infinity;
  let value = 0;
  let payload: Record<string, string | number> = {};
  const print = () => {
    const s = (performance.now() - t0) / 1000;
    const rate = s > 0 && start !== undefined ? (value - start) / s : NaN;
    const eta = rate > 0 ? (total - value) / rate : NaN;
    const extra = fields.map((f) => ` | ${f} ${payload[f] ?? '-'}`).join('');
    process.stderr.write(`${value}/${total} ${unit} | ${Number.isFinite(rate) ? rate.toFixed(2) : '-'} ${unit}/s | ETA ${seconds(eta)}${extra}\n`);
  };
  return {
    update(v, p = {}) {
      start ??= v;
      value = v;
      payload = { ...payload, ...p };
      const now = performance.now();
      if (now - last >= every) {
        last = now;
        print();
      }
    },
    stop() {
      if (start !== undefined && performance.now() !== last) print();
      start = undefined;
    },
  };
}

/**
 * A progress display counting `unit` items up to `total`: items/s over the run and the ETA are filled in;
 * extra `fields` are appended as `name value`.
 */
export function progressBar(total: number, unit: string, fields: string[] = []): Bar {
  if (!process.stderr.isTTY) return lineProgress(total, unit, fields);
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

const SIGNAL_EXIT: Record<'SIGINT' | 'SIGTERM', number> = { SIGINT: 130, SIGTERM: 143 };

export interface StopSignals {
  signal: AbortSignal;
  /** The exit code for the signal that stopped the command (130 for SIGINT, 143 for SIGTERM), else undefined. */
  readonly exitCode: number | undefined;
  dispose(): void;
}

/**
 * An AbortController aborted by the first SIGINT or SIGTERM (with a note on stderr saying `what` happens
 * now); a second signal ends the process with 128 + its number. `dispose` removes the handlers unless a signal
 * already stopped the command.
 */
export function stopSignals(what: string): StopSignals {
  const ac = new AbortController();
  let exitCode: number | undefined;
  const handlers = (Object.keys(SIGNAL_EXIT) as (keyof typeof SIGNAL_EXIT)[]).map((sig) => {
    const handler = () => {
      if (exitCode !== undefined) process.exit(SIGNAL_EXIT[sig]);
      exitCode = SIGNAL_EXIT[sig];
      process.stderr.write(`\nibq: ${sig === 'SIGINT' ? 'interrupted' : 'terminated'}, ${what}… (${sig === 'SIGINT' ? 'Ctrl-C' : 'the signal'} again to kill)\n`);
      ac.abort();
    };
    process.on(sig, handler);
    return [sig, handler] as const;
  });
  return {
    signal: ac.signal,
    get exitCode() {
      return exitCode;
    },
    // once a signal has stopped the command, the handlers stay until the process ends: a further signal during
    // the shutdown (a launcher forwarding to the process group, a second Ctrl-C) exits with 128 + n instead of
    // killing the process by the signal
    dispose: () => {
      if (exitCode === undefined) handlers.forEach(([sig, h]) => process.removeListener(sig, h));
    },
  };
}
