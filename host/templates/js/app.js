// {{name}}: a stage plugin for the `host` orchestrator, in JavaScript.
//
// It reads the task and every upstream text or JSON artifact, asks the model
// alias named by `config.model` (default "small") about them, and returns the
// answer as `{{name}}.md` with an account of its inputs in `{{name}}.json`.
//
// Built into a WebAssembly component by componentize-js: ./build.sh

import { complete } from 'orchestrator:stage/models@{{wit_version}}';
import { log } from 'orchestrator:stage/log@{{wit_version}}';
import { read } from 'orchestrator:stage/inputs@{{wit_version}}';
import { HEAD_BYTES, buildPrompt, isText, readable } from './prompt.js';

const DEFAULTS = {
  model: 'small',
  instruction: 'Summarise the inputs in one short paragraph.',
  max_tokens: 200,
};

const fatal = (message) => ({ tag: 'fatal', val: message });

export const runner = {
  info() {
    return {
      name: '{{name}}',
      version: '0.1.0',
      description: 'Asks a model about the task and the upstream artifacts (JavaScript)',
      // What `host validate` checks each stage's grants against: the alias
      // under config `model`, "small" when it is not set.
      capabilities: {
        models: [{ source: { tag: 'config', val: { key: 'model', fallback: ['small'] } }, required: true }],
        sessions: [],
        gates: [],
        workspace: { access: 'none', required: false },
      },
    };
  },

  run(input) {
    let config;
    try {
      config = { ...DEFAULTS, ...JSON.parse(input.configJson) };
    } catch (e) {
      throw fatal(`config is not JSON: ${e}`);
    }
    // Upstream artifacts come as references (name, mediaType, size, hash):
    // read only the head of the text ones, as much as the prompt can use. A
    // large or binary artifact costs nothing. WIT u64 is a BigInt in JS.
    const upstream = input.inputs.map(({ stageId, artifacts }) => ({
      stageId,
      artifacts: artifacts
        .filter(({ mediaType }) => isText(mediaType))
        .map(({ name, mediaType, size }) => {
          const length = Number(size < BigInt(HEAD_BYTES) ? size : BigInt(HEAD_BYTES));
          return { name, mediaType, bytes: read(stageId, name, 0n, length) };
        }),
    }));
    const inputs = readable(upstream);
    const messages = [
      { role: 'system', content: String(config.instruction) },
      { role: 'user', content: buildPrompt(input.task, inputs) },
    ];
    // console.log is a line of this attempt's log (host show RUN STAGE --log).
    console.log(`asking ${config.model} about ${inputs.length} inputs`);
    let completion;
    try {
      completion = complete(String(config.model), messages, {
        maxTokens: Number(config.max_tokens),
        temperature: undefined,
        stop: [],
        timeoutMs: undefined,
      });
    } catch (e) {
      // A failed call throws its model-error: { tag, val }.
      const error = e.payload ?? { tag: 'unknown', val: String(e) };
      const reason = `model call failed: ${error.tag}: ${error.val}`;
      // Provider trouble may pass: let the host retry. Anything else will not.
      throw error.tag === 'unavailable' ? { tag: 'retryable', val: reason } : fatal(reason);
    }
    log('info', `${config.model} answered with ${completion.outputTokens} tokens`);
    const account = {
      alias: config.model,
      model: completion.model,
      inputs: inputs.map(([stage, name, text]) => ({ stage, name, chars: text.length })),
      output_tokens: completion.outputTokens,
    };
    const encode = (text) => new TextEncoder().encode(text);
    return {
      summary: `${config.model} answered from ${inputs.length} inputs`,
      artifacts: [
        { name: '{{name}}.md', mediaType: 'text/markdown', bytes: encode(completion.text) },
        { name: '{{name}}.json', mediaType: 'application/json', bytes: encode(JSON.stringify(account, null, 2)) },
      ],
      metrics: [
        { name: 'inputs', value: inputs.length },
        { name: 'output_tokens', value: completion.outputTokens },
      ],
      decision: undefined,
    };
  },
};
