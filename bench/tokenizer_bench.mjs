// tokenizer_bench.mjs - @huggingface/tokenizers encode throughput on the text written by
// build/tokenizer-bench --write-text FILE (same bytes, same tokenizer.json files).
//   node bench/tokenizer_bench.mjs NODE_MODULES_PARENT TEXT NAME=DIR ...
import fs from "node:fs";
const [work, textPath, ...specs] = process.argv.slice(2);
const { Tokenizer } = await import(`${work}/node_modules/@huggingface/tokenizers/dist/tokenizers.mjs`);
const text = fs.readFileSync(textPath, "utf8");
const mb = Buffer.byteLength(text) / (1024 * 1024);
console.log(`${"tokenizer".padEnd(12)} ${"load s".padStart(9)} ${"tokens".padStart(10)} ${"encode s".padStart(9)} ${"MB/s".padStart(8)}`);
for (const spec of specs) {
  const [name, dir] = spec.split("=");
  const t0 = performance.now();
  const tok = new Tokenizer(JSON.parse(fs.readFileSync(`${dir}/tokenizer.json`, "utf8")),
                            JSON.parse(fs.readFileSync(`${dir}/tokenizer_config.json`, "utf8")));
  const t1 = performance.now();
  const ids = tok.encode(text, { add_special_tokens: false }).ids;
  const t2 = performance.now();
  const enc = (t2 - t1) / 1000;
  console.log(`${name.padEnd(12)} ${((t1 - t0) / 1000).toFixed(2).padStart(9)} ${String(ids.length).padStart(10)} ${enc.toFixed(2).padStart(9)} ${(mb / enc).toFixed(2).padStart(8)}`);
}
