// embeddings_client.mjs - the official OpenAI JavaScript client's embeddings.create against
// `raftlm serve` with a BERT encoder, plus /v1/search's path-prefix filter.
// usage: node embeddings_client.mjs BASE_URL EXPECTED_JSON
// EXPECTED_JSON (written by tests/test_serve_embed.c through the library's rl_embedder): model,
// dim, texts, vectors (as passages), n_tokens, query_vector (texts[0] as a query), tokens and
// token_vector. Every check prints a line; any mismatch exits 1.
import fs from 'node:fs';
import OpenAI from 'openai';

const [baseURL, expectedFile] = process.argv.slice(2);
const want = JSON.parse(fs.readFileSync(expectedFile, 'utf8'));
const client = new OpenAI({ baseURL, apiKey: 'none', maxRetries: 0, timeout: 60000 });

let failed = 0;
function check(name, ok, detail) {
  console.log(`${ok ? 'ok' : 'FAIL'} ${name}${ok ? '' : ': ' + detail}`);
  if (!ok) failed++;
}
function maxDiff(a, b) {
  if (!a || !b || a.length !== b.length) return Infinity;
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}
const TOL = 1e-5;

// the client asks for base64 by default and decodes it
const r = await client.embeddings.create({ model: 'any-name', input: want.texts });
check('embeddings.create: one vector per input, in order', r.data.length === want.texts.length &&
  r.data.every((d, i) => d.index === i && d.object === 'embedding'), JSON.stringify(r.data.map((d) => d.index)));
let worst = 0;
r.data.forEach((d, i) => { worst = Math.max(worst, maxDiff(Array.from(d.embedding), want.vectors[i])); });
check(`embeddings equal rl_embedder's (max |diff| ${worst.toExponential(2)})`, worst <= TOL, worst);
check('model and usage', r.model === want.model && r.usage.prompt_tokens === want.n_tokens.reduce((a, b) => a + b, 0) &&
  r.usage.total_tokens === r.usage.prompt_tokens, JSON.stringify({ model: r.model, usage: r.usage }));

const f = await client.embeddings.create({ model: 'm', input: want.texts[1], encoding_format: 'float' });
check('encoding_format float, one string', f.data.length === 1 && maxDiff(f.data[0].embedding, want.vectors[1]) <= TOL,
  maxDiff(f.data[0].embedding, want.vectors[1]));

const d = await client.embeddings.create({ model: 'm', input: [want.texts[2]], dimensions: want.dim });
check('dimensions equal to the model\'s', d.data[0].embedding.length === want.dim, d.data[0].embedding.length);

const t = await client.embeddings.create({ model: 'm', input: want.tokens });
check('a token array', maxDiff(Array.from(t.data[0].embedding), want.token_vector) <= TOL,
  maxDiff(Array.from(t.data[0].embedding), want.token_vector));

const q = await client.embeddings.create({ model: 'm', input: want.texts[0], raftlm: { kind: 'query' } });
check('raftlm.kind query uses the query prefix', maxDiff(Array.from(q.data[0].embedding), want.query_vector) <= TOL &&
  maxDiff(Array.from(q.data[0].embedding), want.vectors[0]) > 1e-3, maxDiff(Array.from(q.data[0].embedding), want.query_vector));

async function expectError(name, params, status, needle) {
  try {
    await client.embeddings.create(params);
    check(name, false, 'no error');
  } catch (e) {
    check(name, e.status === status && String(e.message).includes(needle) && e.error && e.error.type === 'invalid_request_error',
      `${e.status} ${e.message}`);
  }
}
await expectError('dimensions the model lacks', { model: 'm', input: 'x', dimensions: want.dim + 1 }, 400, 'dimensions');
await expectError('empty input list', { model: 'm', input: [] }, 400, 'input');
await expectError('an empty string', { model: 'm', input: ['ok', ''] }, 400, 'input');
await expectError('a bad encoding_format', { model: 'm', input: 'x', encoding_format: 'int8' }, 400, 'encoding_format');
await expectError('a token id outside the vocabulary', { model: 'm', input: [[1, 99999999]] }, 400, 'vocabulary');

// /v1/search: every mode with a path prefix returns only matching documents
const base = baseURL.replace(/\/v1$/, '');
for (const mode of ['bm25', 'dense', 'hybrid']) {
  const res = await fetch(`${base}/v1/search`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: 'hands soap surfaces', k: 10, mode, filter: { path_prefix: 'news/' } }) });
  const j = await res.json();
  check(`/v1/search ${mode} with filter.path_prefix`, res.status === 200 && j.mode === mode && j.data.length >= 1 &&
    j.data.every((h) => h.doc.startsWith('news/')), JSON.stringify(j));
}
const bad = await fetch(`${base}/v1/search`, { method: 'POST', headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ query: 'x', filter: { tag: 'a' } }) });
const bj = await bad.json();
check('/v1/search with an unknown filter is a 400 in OpenAI\'s shape', bad.status === 400 && bj.error &&
  bj.error.type === 'invalid_request_error', JSON.stringify(bj));

// chat answers retrieve with the server's mode (hybrid: an embedder and an index are loaded)
const models = await client.models.list();
const chat = await client.chat.completions.create({ model: models.data[0].id, max_tokens: 4, temperature: 0,
  messages: [{ role: 'user', content: 'does a mask cover the nose?' }] });
const src = chat.raftlm && chat.raftlm.sources;
check('chat retrieval (hybrid) names its sources', Array.isArray(src) && src.length >= 1 &&
  src.some((h) => h.doc === 'faq/masks.md'), JSON.stringify(chat.raftlm));

if (failed) {
  console.log(`${failed} checks failed`);
  process.exit(1);
}
console.log('all ok');
