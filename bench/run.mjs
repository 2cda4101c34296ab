#!/usr/bin/env node
// `npm run bench`: our API and a PyTorch reference (bench/ref, Debian's torch on the same libtorch) side by
// side. Per workload: a parity check on a small instance (same weights on both sides; fails loudly), then
// A B A B timing rounds, each side in its own process with the same thread count; median/min/max time and
// peak RSS per side, ratios ours/PyTorch. Writes bench/results/<workload>.json and BENCHMARKS.md.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { WORKLOADS } from './workloads.mjs';
import { workloadFlops } from './flops.mjs';
import { machineInfo, renderTable } from './report.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');
// Workloads the upstream adapter (bench/ref/upstream.py) runs from a user's checkout.
const UPSTREAM = new Set(['encode_decode', 'quantizer_16k', 'quantizer_262k', 'ar_sampling']);
const PYTHON = process.env.IBQ_BENCH_PYTHON ?? '/usr/bin/python3';

const positiveInt = (name) => (v) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name}: expected an integer >= 1, got '${v}'`);
  return n;
};

const program = new Command('bench')
  .description('Benchmark ibq-native against a PyTorch reference on the same libtorch (parity check first)')
  .option('--only <workloads>', `comma-separated subset of: ${Object.keys(WORKLOADS).join(', ')}`)
  .option('--quick', 'small sizes (CI): a couple of minutes; results under bench/results/quick/')
  .option('--threads <n>', 'intra-op threads of both sides', positiveInt('--threads'), 2)
  .option('--rounds <n>', 'A B rounds per workload (default: per workload)', positiveInt('--rounds'))
  .option('--upstream <dir>', "also time the upstream IBQ project's own modules from this local checkout")
  .option('--out <dir>', 'results folder (default bench/results, or bench/results/quick with --quick); with --out or --quick ' +
    'the BENCHMARKS.md of the run is written there, and the repository\'s BENCHMARKS.md is left as it is')
  .showHelpAfterError();
program.parse();
const opts = program.opts();

const names = opts.only ? opts.only.split(',').map((s) => s.trim()).filter(Boolean) : Object.keys(WORKLOADS);
for (const n of names) {
  if (!WORKLOADS[n]) program.error(`--only: unknown workload '${n}' (expected one of ${Object.keys(WORKLOADS).join(', ')})`);
}
if (opts.upstream && !existsSync(join(opts.upstream, 'src'))) {
  program.error(`--upstream: '${opts.upstream}' is not a checkout of the upstream IBQ project (no src/ folder)`);
}
if (!existsSync(join(ROOT, 'dist', 'index.js'))) program.error('dist/ is missing: run `npm run build` first');

const outDir = resolve(opts.out ?? join(HERE, 'results', opts.quick ? 'quick' : ''));
mkdirSync(outDir, { recursive: true });
const work = mkdtempSync(join(tmpdir(), 'ibq-bench-'));
// OpenMP threads sleep rather than spin while waiting (both sides): on a shared, loaded machine spinning
// threads of one side starve each other and measure the neighbours, not the code (a 10x swing here).
// Set OMP_WAIT_POLICY yourself to override.
const waitPolicy = process.env.OMP_WAIT_POLICY ?? 'PASSIVE';
const env = {
  ...process.env, OMP_NUM_THREADS: String(opts.threads), MKL_NUM_THREADS: String(opts.threads), OMP_WAIT_POLICY: waitPolicy,
};

function runJson(cmd, args, what) {
  const r = spawnSync(cmd, args, { cwd: ROOT, env, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  const lines = (r.stdout ?? '').trim().split('\n');
  if (r.status !== 0) {
    throw new Error(`${what} failed (exit ${r.status ?? r.signal}):\n${(r.stderr ?? '').trim().split('\n').slice(-15).join('\n')}`);
  }
  try {
    return JSON.parse(lines[lines.length - 1]);
  } catch {
    throw new Error(`${what}: no JSON result on stdout:\n${r.stdout}\n${r.stderr}`);
  }
}
const py = (args, what) => runJson(PYTHON, [join(HERE, 'ref', 'worker.py'), ...args], `PyTorch ${what}`);
const ours = (args, what) => runJson(process.execPath, [join(HERE, 'ours.mjs'), ...args], `ours ${what}`);
const upstream = (args, what) => runJson(PYTHON, [join(HERE, 'ref', 'upstream.py'), ...args], `upstream ${what}`);

const log = (s) => process.stderr.write(`${s}\n`);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const round = (x, d = 4) => Number(x.toPrecision(d));

function parity(name, w) {
  const dir = join(work, `${name}-parity`);
  mkdirSync(dir, { recursive: true });
  const p = { ...w.parity, threads: opts.threads };
  const ps = JSON.stringify(p);
  py(['prep', name, ps, dir], `${name} parity prep`);
  ours(['parity', name, ps, dir], `${name} parity`);
  const r = py(['check', name, ps, dir], `${name} parity check`);
  const worst = (rows, key) => Math.max(0, ...rows.filter((x) => x[key] !== undefined).map((x) => x[key]));
  return {
    ok: r.ok,
    params: w.parity,
    checks: r.rows.length,
    max_abs_diff: worst(r.rows, 'max_abs_diff'),
    integer_mismatches: r.rows.filter((x) => x.exact).reduce((a, x) => a + x.mismatches, 0),
    failed: r.rows.filter((x) => !x.ok),
    rows: r.rows,
  };
}

function summarize(runs) {
  const times = runs.flatMap((r) => r.times);
  const out = {
    median_s: round(median(times)), min_s: round(Math.min(...times)), max_s: round(Math.max(...times)),
    peak_rss_mb: round(Math.max(...runs.map((r) => r.peak_rss_mb)), 5), samples: times.length,
  };
  if (runs[0].small_times) {
    const st = runs.flatMap((r) => r.small_times);
    out.small_batch = { median_s: round(median(st)), min_s: round(Math.min(...st)), max_s: round(Math.max(...st)), samples: st.length };
  }
  if (runs[0].rss_after_load_mb !== undefined) out.rss_after_load_mb = round(median(runs.map((r) => r.rss_after_load_mb)), 5);
  return out;
}

function timing(name, w, params) {
  const ps = JSON.stringify(params);
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  const rounds = opts.rounds ?? params.rounds ?? 2;
  const a = [], b = [], c = [];
  for (let r = 0; r < rounds; r++) {
    a.push(ours(['time', name, ps, dir], `${name} timing`));
    log(`  round ${r + 1}/${rounds}: ours ${a.at(-1).times.map((t) => t.toFixed(3)).join(' ')} s`);
    b.push(py(['time', name, ps, dir], `${name} timing`));
    log(`  round ${r + 1}/${rounds}: PyTorch ${b.at(-1).times.map((t) => t.toFixed(3)).join(' ')} s`);
    if (opts.upstream && UPSTREAM.has(name)) {
      try {
        c.push(upstream(['time', name, ps, resolve(opts.upstream)], `${name} timing`));
        log(`  round ${r + 1}/${rounds}: upstream ${c.at(-1).times.map((t) => t.toFixed(3)).join(' ')} s`);
      } catch (err) {
        log(`  upstream modules not timed: ${err.message}`);
      }
    }
  }
  return { ours: summarize(a), pytorch: summarize(b), upstream: c.length ? summarize(c) : undefined };
}

function ensureCheckpoint(params) {
  const path = join(work, `ckpt-${params.count}x${params.mb}.ckpt`);
  if (!existsSync(path)) {
    log(`  writing ${path} (${params.count} x ${params.mb} MB) with torch.save`);
    py(['mkckpt', path, String(params.count), String(params.mb)], 'checkpoint writing');
  }
  // warm page cache: read it once
  execFileSync('cat', [path], { stdio: ['ignore', 'ignore', 'inherit'], maxBuffer: 1 });
  return { path, bytes: statSync(path).size };
}

const machine = { ...machineInfo(opts.threads), omp_wait_policy: waitPolicy, load_average: loadavg().map((x) => round(x, 3)) };
// The FMA peak per thread, measured once (best of repeated runs over 1 s) and used for both sides' shares.
const fma = ours(['peak'], 'FMA peak');
machine.fma_peak_gflops_per_thread = round(fma.gflops_per_thread);
machine.fma_kernel = fma.kernel;
const started = Date.now();
const failures = [];
log(`ibq-native bench${opts.quick ? ' (--quick)' : ''}: ${machine.cpu}, ${machine.cores} cores, ${opts.threads} threads per side; ` +
  `FMA peak ${machine.fma_peak_gflops_per_thread} GFLOP/s per thread (${machine.fma_kernel})`);
try {
  for (const name of names) {
    const w = WORKLOADS[name];
    const params = { ...(opts.quick ? w.quick : w.full), threads: opts.threads };
    log(`${name}: ${w.title}, ${w.describe(params)}`);
    const t0 = Date.now();
    if (w.oursOnly) {
      const r = runJson(process.execPath, [join(HERE, `${name}.mjs`), JSON.stringify(params)], name);
      const result = { workload: name, title: w.title, description: w.describe(params), params, threads: opts.threads, quick: !!opts.quick, machine, date: new Date().toISOString(), ...r };
      writeFileSync(join(outDir, `${name}.json`), `${JSON.stringify(result, null, 2)}\n`);
      log(`  ratios ${JSON.stringify(r.ratios)} [${((Date.now() - t0) / 1000).toFixed(0)} s]`);
      continue;
    }
    const par = parity(name, w);
    log(`  parity (${par.checks} checks, small instance): ${par.ok ? 'ok' : 'MISMATCH'}; max |diff| ${par.max_abs_diff.toExponential(2)}, integer mismatches ${par.integer_mismatches}`);
    if (!par.ok) {
      for (const f of par.failed) log(`    FAILED ${f.name}: ${JSON.stringify(f)}`);
      failures.push(name);
      log(`  ${name}: NOT TIMED: ours and the reference compute different things`);
      continue;
    }
    let file;
    if (name === 'ckpt_load') {
      file = ensureCheckpoint(params);
      params.path = file.path;
      params.warm_path = join(work, `${name}-parity`, 'weights.ckpt');  // a small checkpoint loaded first
    }
    let t;
    const byWorkers = {};
    if (name === 'data') {
      // the same JPEGs for every round and worker count; ours and PyTorch at each count, the last one in the table row
      params.dir = join(work, name);
      mkdirSync(params.dir, { recursive: true });
      py(['prep', name, JSON.stringify(params), params.dir], 'data images');
      for (const workers of params.worker_counts) {
        log(`  ${workers} worker${workers > 1 ? 's' : ''}:`);
        t = timing(name, w, { ...params, workers });
        const ips = { ours: round(params.images / t.ours.median_s), pytorch: round(params.images / t.pytorch.median_s) };
        byWorkers[workers] = { ours: t.ours, pytorch: t.pytorch, images_per_s: ips, speedup: round(ips.ours / ips.pytorch, 3) };
        log(`    images/s: ours ${ips.ours}, PyTorch DataLoader ${ips.pytorch} (${byWorkers[workers].speedup}x)`);
      }
      delete params.dir;
    } else {
      t = timing(name, w, params);
    }
    const result = {
      workload: name,
      title: w.title,
      description: w.describe(params),
      params: Object.fromEntries(Object.entries(params).filter(([k]) => k !== 'path' && k !== 'warm_path')),
      threads: opts.threads,
      quick: !!opts.quick,
      machine,
      date: new Date().toISOString(),
      parity: { ok: par.ok, checks: par.checks, max_abs_diff: par.max_abs_diff, integer_mismatches: par.integer_mismatches, rows: par.rows },
      ours: t.ours,
      pytorch: t.pytorch,
      ...(t.upstream ? { upstream: t.upstream } : {}),
      ratio_time: round(t.ours.median_s / t.pytorch.median_s, 3),
      ratio_memory: round(t.ours.peak_rss_mb / t.pytorch.peak_rss_mb, 3),
    };
    const flop = workloadFlops(name, params);
    if (flop !== undefined) {
      const peak = machine.fma_peak_gflops_per_thread * 1e9 * opts.threads;
      result.flop = flop;
      result.fma_peak_gflops = round(peak / 1e9);
      result.peak_share = { ours: round(flop / t.ours.median_s / peak, 3), pytorch: round(flop / t.pytorch.median_s / peak, 3) };
    }
    if (name === 'data') result.by_workers = byWorkers;
    if (name === 'ar_sampling') {
      const tokens = params.batch * params.block_size;
      result.tokens_per_s = { ours: round(tokens / t.ours.median_s), pytorch: round(tokens / t.pytorch.median_s) };
      result.speedup_tokens_per_s = round(t.pytorch.median_s / t.ours.median_s, 3);
      if (t.ours.small_batch && t.pytorch.small_batch) {
        const small = params.small_batch * params.block_size, so = t.ours.small_batch, sp = t.pytorch.small_batch;
        result.small_batch = {
          batch: params.small_batch,
          tokens_per_s: { ours: round(small / so.median_s), pytorch: round(small / sp.median_s) },
          speedup_tokens_per_s: round(sp.median_s / so.median_s, 3),
        };
      }
    }
    if (file) {
      result.file_mb = round(file.bytes / 2 ** 20, 5);
      result.rss_after_load_over_file = {
        ours: round(t.ours.rss_after_load_mb / result.file_mb, 3), pytorch: round(t.pytorch.rss_after_load_mb / result.file_mb, 3),
      };
    }
    writeFileSync(join(outDir, `${name}.json`), `${JSON.stringify(result, null, 2)}\n`);
    log(`  ours ${t.ours.median_s} s (${t.ours.peak_rss_mb} MB), PyTorch ${t.pytorch.median_s} s (${t.pytorch.peak_rss_mb} MB): ` +
        `time ratio ${result.ratio_time}, memory ratio ${result.ratio_memory} [${((Date.now() - t0) / 1000).toFixed(0)} s]`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

const results = readdirSync(outDir).filter((f) => f.endsWith('.json'))
  .map((f) => JSON.parse(readFileSync(join(outDir, f), 'utf8')))
  .sort((x, y) => Object.keys(WORKLOADS).indexOf(x.workload) - Object.keys(WORKLOADS).indexOf(y.workload));
const md = opts.quick || opts.out ? join(outDir, 'BENCHMARKS.md') : join(ROOT, 'BENCHMARKS.md');
writeFileSync(md, renderTable(results, machine, { names, seconds: (Date.now() - started) / 1000 }));
log(`wrote ${md} and ${outDir}/<workload>.json in ${((Date.now() - started) / 1000).toFixed(0)} s`);
if (failures.length) {
  log(`PARITY FAILED for: ${failures.join(', ')} (see above); those workloads were not timed`);
  process.exit(1);
}
