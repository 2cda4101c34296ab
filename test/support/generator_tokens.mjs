// Prints the tokens of two seeded engine requests (test/transformer/generator.test.ts runs it under each
// IBQ_ROWS_KERNEL): one line of comma-separated ids.
import { createGenerator, tensor, Transformer } from '../../dist/index.js';

const tr = Transformer.create({ vocab_size: 200, block_size: 16, n_layer: 2, n_head: 4, n_embd: 64, class_num: 5, multiple_of: 48 }, { seed: 3 });
const head = tr.stateDict().get('head.weight');
const w = new Float32Array(head.shape[0] * head.shape[1]).map((_, i) => Math.sin(i * 12.9898) * 3);
await tr.loadStateDict(new Map([['head.weight', tensor(w, head.shape)]]), { strict: false });
tr.eval();
const g = createGenerator({ transformer: tr, maxBatch: 2 });
const rs = await Promise.all([g.generate({ label: 1, seed: 7, cfgScale: 2 }), g.generate({ label: 3, seed: 8, topK: 30 })]);
console.log(rs.map((r) => Array.from(r.tokens.dataSync()).join(',')).join(';'));
tr.dispose();
