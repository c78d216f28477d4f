// app.js's runner end to end in Node: npm test
// (node --import ./testing/register.js --test). The test host stands in for
// the host's interfaces (testing/host.js): a scripted model answer, an
// upstream artifact, captured calls and logs.
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { host } from './testing/host.js';
import { runner } from './app.js';

beforeEach(() => host.reset());

test('run asks the model about the task and its inputs', () => {
  host.answer('small', 'A short summary.');
  const input = host.stageInput('Summarise the notes', {
    upstream: [
      {
        stageId: 'greet',
        artifacts: [
          { name: 'greeting.txt', mediaType: 'text/plain', bytes: new TextEncoder().encode('Hello there') },
          { name: 'image.png', mediaType: 'image/png', bytes: new Uint8Array([0x89, 0x50]) },
        ],
      },
    ],
  });
  const output = runner.run(input);
  assert.equal(host.calls.length, 1);
  assert.equal(host.calls[0].alias, 'small');
  assert.ok(host.calls[0].prompt.includes('Summarise the notes'));
  assert.ok(host.calls[0].prompt.includes('--- greet/greeting.txt ---\nHello there'));
  const answer = output.artifacts.find((a) => a.name.endsWith('.md'));
  assert.equal(new TextDecoder().decode(answer.bytes), 'A short summary.');
  const account = JSON.parse(new TextDecoder().decode(output.artifacts.find((a) => a.name.endsWith('.json')).bytes));
  assert.deepEqual(account.inputs, [{ stage: 'greet', name: 'greeting.txt', chars: 11 }]);
});

test('an unavailable model is a retryable failure', () => {
  host.fail('small', 'unavailable', 'down for a minute');
  assert.throws(() => runner.run(host.stageInput('t')), (e) => e.tag === 'retryable' && e.val.includes('down for a minute'));
});
