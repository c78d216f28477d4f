// A stand-in for the host, so Node runs app.js's runner end to end.
//
// Inside the component, app.js's imports (`orchestrator:stage/...`) are the
// host's interfaces. In Node, testing/hooks.js resolves every one of them
// to this module, which scripts model answers per alias, serves upstream
// artifacts to `read`, and keeps what the plugin called and logged: what
// `plugin_sdk::testing::TestHost` is for a Rust plugin. See app.test.js.

const state = { answers: new Map(), calls: [], logs: [], artifacts: new Map() };

export const host = {
  /** The next call to `alias` answers `text` (answers queue up). */
  answer(alias, text) {
    queue(alias).push({ text });
    return host;
  },
  /** The next call to `alias` fails with model-error `tag` ('unavailable'...). */
  fail(alias, tag, reason) {
    queue(alias).push({ error: { tag, val: reason } });
    return host;
  },
  /** Forgets every answer, call, log line and artifact. */
  reset() {
    state.answers.clear();
    state.calls.length = 0;
    state.logs.length = 0;
    state.artifacts.clear();
    return host;
  },
  get calls() {
    return state.calls;
  },
  get logs() {
    return state.logs;
  },
  /** A stage-input; `upstream` is [{ stageId, artifacts: [{ name, mediaType, bytes }] }],
   * handed by reference as the host does, the bytes read through `read`. */
  stageInput(task, { config = {}, upstream = [] } = {}) {
    const inputs = upstream.map(({ stageId, artifacts }) => ({
      stageId,
      summary: '',
      decision: undefined,
      metrics: [],
      artifacts: artifacts.map(({ name, mediaType, bytes }) => {
        state.artifacts.set(`${stageId}/${name}`, bytes);
        return { name, mediaType, size: BigInt(bytes.length), hash: '' };
      }),
    }));
    return {
      runId: 'test-run',
      stageId: 'stage',
      task,
      configJson: JSON.stringify(config),
      inputs,
      attempt: 1,
      iteration: 0,
      feedback: undefined,
    };
  },
};

function queue(alias) {
  if (!state.answers.has(alias)) state.answers.set(alias, []);
  return state.answers.get(alias);
}

/** A WIT error as the component's bindings throw it: `e.payload`. */
function thrown(payload) {
  const e = new Error(`${payload.tag}: ${payload.val}`);
  e.payload = payload;
  return e;
}

// orchestrator:stage/models
export function complete(alias, messages, params) {
  state.calls.push({ alias, messages, params, prompt: messages.map((m) => m.content).join('\n') });
  const next = (state.answers.get(alias) ?? []).shift();
  if (!next) throw thrown({ tag: 'not-granted', val: `the test host has no answer for alias '${alias}'` });
  if (next.error) throw thrown(next.error);
  const words = (text) => text.split(/\s+/).filter(Boolean).length;
  return {
    text: next.text,
    model: `test:${alias}`,
    inputTokens: messages.reduce((n, m) => n + words(m.content), 0),
    outputTokens: words(next.text),
    finishReason: 'stop',
  };
}

// orchestrator:stage/log
export function log(level, message) {
  state.logs.push([level, message]);
}

export function progress(done, total, message) {
  state.logs.push(['progress', `${done}/${total} ${message}`]);
}

// orchestrator:stage/inputs
export function read(stageId, name, offset, length) {
  const bytes = state.artifacts.get(`${stageId}/${name}`);
  if (!bytes) throw thrown(`the test host has no artifact '${name}' of stage '${stageId}'`);
  const start = Number(offset);
  return bytes.subarray(start, start + length);
}
