// Runs an ONNX model with onnxruntime's Node.js binding on inputs written by
// tools/onnx/ort_runner.hpp and writes its outputs back, for qaware's ONNX
// tests and the demo.
//
//   node ort_run.js --ort ORT_DIR --model MODEL.onnx --in IN_DIR --out OUT_DIR
//                   [--optimization all|disabled] [--accuracy-level N] [--threads N]
//                   [--outputs NAME,NAME...]
//
// ORT_DIR holds node_modules/onnxruntime-node (scripts/fetch_onnxruntime.sh).
// IN_DIR/inputs.json lists {"name": {"dtype": "int64"|"float32", "dims": [...]}}
// with each tensor's raw little-endian bytes in IN_DIR/<name>.bin. Every output
// of the model (or those --outputs names) is written as OUT_DIR/<name>.bin (float32) with
// OUT_DIR/outputs.json giving each one's dims. --accuracy-level sets the
// session option qdq_matmulnbits_accuracy_level (what onnxruntime's
// DequantizeLinear + MatMul -> MatMulNBits fusion may do to activations).
'use strict';
const fs = require('fs');
const path = require('path');

function fail(msg) {
  process.stderr.write(`ort_run: ${msg}\n`);
  process.exit(1);
}

const args = {optimization: 'all', threads: '1'};
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i];
  const value = process.argv[i + 1];
  if (!key.startsWith('--') || value === undefined) fail(`bad argument ${key}`);
  args[key.slice(2)] = value;
}
for (const k of ['ort', 'model', 'in', 'out']) if (!args[k]) fail(`--${k} is required`);
if (!['all', 'disabled', 'basic', 'extended'].includes(args.optimization)) fail(`--optimization ${args.optimization}`);

let ort;
try {
  ort = require(path.resolve(args.ort, 'node_modules', 'onnxruntime-node'));
} catch (e) {
  fail(`cannot load onnxruntime-node from ${args.ort}: ${e.message}`);
}

async function main() {
  const options = {graphOptimizationLevel: args.optimization, intraOpNumThreads: Number(args.threads),
                   interOpNumThreads: 1, executionProviders: ['cpu']};
  if (args['accuracy-level'] !== undefined)
    options.extra = {session: {qdq_matmulnbits_accuracy_level: String(args['accuracy-level'])}};
  const session = await ort.InferenceSession.create(args.model, options);
  const spec = JSON.parse(fs.readFileSync(path.join(args.in, 'inputs.json'), 'utf8'));
  const feeds = {};
  for (const [name, s] of Object.entries(spec)) {
    const buf = fs.readFileSync(path.join(args.in, `${name}.bin`));
    const bytes = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
    let data;
    if (s.dtype === 'int64') data = new BigInt64Array(bytes);
    else if (s.dtype === 'float32') data = new Float32Array(bytes);
    else fail(`input ${name}: dtype ${s.dtype} is not supported`);
    feeds[name] = new ort.Tensor(s.dtype, data, s.dims);
  }
  const results = args.outputs ? await session.run(feeds, args.outputs.split(',')) : await session.run(feeds);
  fs.mkdirSync(args.out, {recursive: true});
  const manifest = {};
  for (const [name, t] of Object.entries(results)) {
    if (t.type !== 'float32') fail(`output ${name} is ${t.type}, expected float32`);
    fs.writeFileSync(path.join(args.out, `${name}.bin`), Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    manifest[name] = {dims: t.dims.map(Number)};
  }
  fs.writeFileSync(path.join(args.out, 'outputs.json'), JSON.stringify(manifest));
}

main().catch((e) => fail(e.message || String(e)));
