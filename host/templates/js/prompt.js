// The plugin's logic, free of the WIT bindings so Node can test it.

/** Most characters of one upstream artifact put into the prompt. */
export const MAX_INPUT_CHARS = 2000;

/**
 * [stage, name, text] of every upstream text or JSON artifact.
 * `upstream` is a list of { stageId, artifacts: [{ name, mediaType, bytes }] }.
 */
export function readable(upstream) {
  const found = [];
  const decoder = new TextDecoder('utf-8', { fatal: true });
  for (const { stageId, artifacts } of upstream) {
    for (const { name, mediaType, bytes } of artifacts) {
      if (!(mediaType.startsWith('text/') || mediaType === 'application/json')) continue;
      try {
        found.push([stageId, name, decoder.decode(bytes)]);
      } catch {
        // Not UTF-8 after all: not for a prompt.
      }
    }
  }
  return found;
}

/** The user message: the task, then each input under a header. */
export function buildPrompt(task, inputs) {
  let prompt = `Task:\n${task}\n`;
  for (const [stage, name, text] of inputs) {
    prompt += `\n--- ${stage}/${name} ---\n${text.slice(0, MAX_INPUT_CHARS)}\n`;
  }
  return prompt;
}
