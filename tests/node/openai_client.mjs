// openai_client.mjs - the official OpenAI JavaScript client against `raftlm serve`.
// usage: node openai_client.mjs BASE_URL MODEL PROMPT MAX_TOKENS EXPECTED_FILE
// EXPECTED_FILE holds what `raftlm generate --temp 0` printed for PROMPT; every check prints a
// line, and the first mismatch exits 1.
import fs from 'node:fs';
import OpenAI from 'openai';

const [baseURL, model, prompt, maxTokensArg, expectedFile] = process.argv.slice(2);
const maxTokens = Number(maxTokensArg);
const expected = fs.readFileSync(expectedFile, 'utf8');
const client = new OpenAI({ baseURL, apiKey: process.env.RAFTLM_API_KEY || 'none', maxRetries: 0, timeout: 60000 });

let failed = 0;
function check(name, ok, detail) {
  console.log(`${ok ? 'ok' : 'FAIL'} ${name}${ok ? '' : ': ' + detail}`);
  if (!ok) failed++;
}

const models = await client.models.list();
check('models.list', models.data.some((m) => m.id === model), JSON.stringify(models.data));

const plain = { raftlm: { retrieval: false } }; // the store is on: switch retrieval off to compare with generate
const chat = await client.chat.completions.create({
  model, messages: [{ role: 'user', content: prompt }], temperature: 0, max_tokens: maxTokens, ...plain,
});
check('chat non-streaming text', chat.choices[0].message.content === expected,
  JSON.stringify(chat.choices[0].message.content) + ' vs ' + JSON.stringify(expected));
check('chat usage', chat.usage && chat.usage.completion_tokens > 0 && chat.usage.total_tokens ===
  chat.usage.prompt_tokens + chat.usage.completion_tokens, JSON.stringify(chat.usage));

const stream = await client.chat.completions.create({
  model, messages: [{ role: 'user', content: prompt }], temperature: 0, max_tokens: maxTokens, stream: true,
  stream_options: { include_usage: true }, ...plain,
});
let text = '', finish = null, usage = null, chunks = 0;
for await (const chunk of stream) {
  chunks++;
  if (chunk.usage) usage = chunk.usage;
  const c = chunk.choices[0];
  if (!c) continue;
  if (c.delta && c.delta.content) text += c.delta.content;
  if (c.finish_reason) finish = c.finish_reason;
}
check('chat streaming deltas', text === expected, JSON.stringify(text) + ' vs ' + JSON.stringify(expected));
check('chat stream ends with a finish reason and usage', finish !== null && usage && usage.completion_tokens > 0,
  `finish ${finish}, usage ${JSON.stringify(usage)}`);
check('chat stream had many chunks', chunks > 5, String(chunks));

const comp = await client.completions.create({ model, prompt, temperature: 0, max_tokens: maxTokens });
check('completions non-streaming text', comp.choices[0].text === expected, JSON.stringify(comp.choices[0].text));

const cstream = await client.completions.create({ model, prompt, temperature: 0, max_tokens: maxTokens, stream: true });
let ctext = '';
for await (const chunk of cstream) ctext += chunk.choices[0] ? chunk.choices[0].text : '';
check('completions streaming text', ctext === expected, JSON.stringify(ctext));

// answers from the store: sources come back in the raftlm extension
const rag = await client.chat.completions.create({
  model, messages: [{ role: 'user', content: 'Where does Lily keep the red ball?' }], temperature: 0, max_tokens: 10,
});
check('retrieval sources', rag.raftlm && rag.raftlm.retrieval === true && rag.raftlm.sources.length > 0 &&
  rag.raftlm.sources[0].doc === 'ball.md', JSON.stringify(rag.raftlm));

// errors arrive as the client's typed errors
try {
  await client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] });
  check('unknown model', false, 'no error');
} catch (e) {
  check('unknown model -> NotFoundError 404', e instanceof OpenAI.NotFoundError && e.status === 404 &&
    e.code === 'model_not_found', `${e.constructor.name} ${e.status} ${e.code}`);
}
try {
  await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }], max_tokens: 100000 });
  check('max_tokens too large', false, 'no error');
} catch (e) {
  check('max_tokens too large -> BadRequestError 400', e instanceof OpenAI.BadRequestError && e.status === 400,
    `${e.constructor.name} ${e.status}`);
}

// the plain HTTP endpoints
const root = baseURL.replace(/\/v1$/, '');
const health = await fetch(root + '/health');
check('/health', health.status === 200 && (await health.json()).status === 'ok', String(health.status));
const search = await fetch(baseURL + '/search', {
  method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${client.apiKey}` },
  body: JSON.stringify({ query: 'tomato beds watered', k: 1 }),
});
const sj = await search.json();
check('/v1/search', search.status === 200 && sj.data.length === 1 && sj.data[0].doc === 'garden.md' &&
  typeof sj.data[0].score === 'number' && sj.data[0].text.includes('Tuesday') && 'heading' in sj.data[0],
  JSON.stringify(sj));

console.log(failed ? `${failed} failed` : 'all ok');
process.exit(failed ? 1 : 0);
