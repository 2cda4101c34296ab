/**
 * The demo's metrics.json (every figure, steps, settings, timings) and the summary it prints. Targets are the
 * acceptance figures of the demo: held-out PSNR >= 20 dB, codebook utilization >= 50% of n_embed, class
 * consistency >= 40% (chance 1 / classes), held-out AR loss <= 0.8 * ln(n_embed).
 */
import type { DemoSettings } from './settings.js';

export const TARGETS = { psnr: 20, utilization: 0.5, classConsistency: 0.4, arLossRatio: 0.8 } as const;

export interface DemoMetrics {
  version: 1;
  createdAt: string;
  data: { source: string; kind: 'idx' | 'image-folder'; classes: string[]; trainImages: number; heldOutImages: number; imageSize: number };
  environment: {
    libtorch: string; device: string; threads: number; cpus: number; node: string; lpips: boolean; lpipsNote: string;
    /** The CPU (model name, and family/model on Linux): seeded figures repeat on the same CPU, not across CPUs. */
    cpu: string;
    /** BLAS and allocator settings from the environment (`npm run demo` sets them), null when unset. */
    tuning: Record<string, string | null>;
  };
  tokenizer: {
    steps: number; batchSize: number; nEmbed: number; tokens: [number, number];
    psnr: number; ssim: number; codebookUsed: number; codebookUtilization: number;
    trainingLoss: Record<string, number>;
  };
  transformer: {
    steps: number; batchSize: number; parameters: number; trainLoss: number; heldOutLoss: number; heldOutLossBound: number;
    heldOutSequences: number;
  };
  sampling: DemoSettings['sampling'] & { samples: number };
  classConsistency: { share: number; chance: number; perClass: number[]; classifierAccuracyOnRealHeldOut: number };
  targets: { psnr: boolean; codebookUtilization: boolean; classConsistency: boolean; heldOutLoss: boolean };
  settings: DemoSettings;
  timings: {
    /** Seconds from `npm run demo` (scripts/setup: packages, npm ci, build) until the demo started; null when run directly. */
    setupAndBuild: number | null;
    /** Seconds of the run itself, total and per stage. */
    run: number;
    stages: Record<string, number>;
  };
  files: { reconstructions: string; samples: string; metrics: string; tokenizerCheckpoint: string; transformerCheckpoint: string };
}

export function checkTargets(m: Pick<DemoMetrics, 'tokenizer' | 'transformer' | 'classConsistency'>): DemoMetrics['targets'] {
  return {
    psnr: m.tokenizer.psnr >= TARGETS.psnr,
    codebookUtilization: m.tokenizer.codebookUtilization >= TARGETS.utilization,
    classConsistency: m.classConsistency.share >= TARGETS.classConsistency,
    heldOutLoss: m.transformer.heldOutLoss <= m.transformer.heldOutLossBound,
  };
}

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
/** 'ok', or how a figure misses its target: a share below it, a loss above its bound. */
const mark = (ok: boolean, miss: 'below target' | 'above the bound' = 'below target') => (ok ? 'ok' : miss);

/** The summary printed at the end of the demo. */
export function summaryLines(m: DemoMetrics): string[] {
  const t = m.timings;
  const stages = Object.entries(t.stages).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(', ');
  return [
    `tokenizer (held-out, ${m.data.heldOutImages} images): PSNR ${m.tokenizer.psnr.toFixed(2)} dB (target >= ${TARGETS.psnr}: ${mark(m.targets.psnr)}), ` +
      `SSIM ${m.tokenizer.ssim.toFixed(3)}, codebook ${m.tokenizer.codebookUsed}/${m.tokenizer.nEmbed} used = ${pct(m.tokenizer.codebookUtilization)} ` +
      `(target >= ${pct(TARGETS.utilization)}: ${mark(m.targets.codebookUtilization)})`,
    `transformer: held-out loss ${m.transformer.heldOutLoss.toFixed(3)} nats/token (bound 0.8 * ln(${m.tokenizer.nEmbed}) = ` +
      `${m.transformer.heldOutLossBound.toFixed(3)}: ${mark(m.targets.heldOutLoss, 'above the bound')}), training loss ${m.transformer.trainLoss.toFixed(3)}`,
    `class consistency: ${pct(m.classConsistency.share)} of ${m.sampling.samples} samples labelled with their class by a nearest-class-mean ` +
      `classifier (chance ${pct(m.classConsistency.chance)}; target >= ${pct(TARGETS.classConsistency)}: ${mark(m.targets.classConsistency)}; ` +
      `the same classifier on real held-out images: ${pct(m.classConsistency.classifierAccuracyOnRealHeldOut)})`,
    `time: run ${t.run.toFixed(1)} s (${stages})` + (t.setupAndBuild === null ? '' : `; setup and build ${t.setupAndBuild.toFixed(1)} s`),
    `wrote ${m.files.reconstructions}, ${m.files.samples}, ${m.files.metrics}`,
  ];
}
