// Unit tests of the plugin's logic: npm test (node --test)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildPrompt, readable } from './prompt.js';

test('the prompt holds the task and each readable input', () => {
  const upstream = [
    {
      stageId: 'greet',
      artifacts: [
        { name: 'greeting.txt', mediaType: 'text/plain', bytes: new TextEncoder().encode('Hello there') },
        { name: 'image.png', mediaType: 'image/png', bytes: new Uint8Array([0x89, 0x50]) },
      ],
    },
  ];
  const inputs = readable(upstream);
  assert.deepEqual(inputs, [['greet', 'greeting.txt', 'Hello there']]);
  const prompt = buildPrompt('the task', inputs);
  assert.ok(prompt.startsWith('Task:\nthe task\n'));
  assert.ok(prompt.includes('--- greet/greeting.txt ---\nHello there'));
});

test('a head cut inside a character still reads', () => {
  const cut = new TextEncoder().encode('héllo wörld').subarray(0, -4);
  const upstream = [{ stageId: 's', artifacts: [{ name: 'a.txt', mediaType: 'text/plain', bytes: cut }] }];
  assert.deepEqual(readable(upstream), [['s', 'a.txt', 'héllo w']]);
});
