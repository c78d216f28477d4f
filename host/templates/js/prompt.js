// The plugin's logic, free of the WIT bindings so Node can test it.

/** Most characters of one upstream artifact put into the prompt. */
export const MAX_INPUT_CHARS = 2000;
/** Bytes read of an artifact: enough for MAX_INPUT_CHARS of any UTF-8 text. */
export const HEAD_BYTES = 4 * MAX_INPUT_CHARS;

/** Whether an artifact of this media type can go into a prompt. */
export const isText = (mediaType) => mediaType.startsWith('text/') || mediaType === 'application/json';

/** UTF-8 text of the head of an artifact, whose last character may be cut
 * (up to 3 bytes of it dropped); undefined if it is not UTF-8. */
export function decodeHead(bytes) {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  for (let cut = 0; cut < 4 && cut <= bytes.length; cut++) {
    try {
      return decoder.decode(bytes.subarray(0, bytes.length - cut));
    } catch {
      // Try without one more byte.
    }
  }
  return undefined;
}

/**
 * [stage, name, text] of every upstream text or JSON artifact.
 * `upstream` is a list of { stageId, artifacts: [{ name, mediaType, bytes }] }.
 */
export function readable(upstream) {
  const found = [];
  for (const { stageId, artifacts } of upstream) {
    for (const { name, mediaType, bytes } of artifacts) {
      if (!isText(mediaType)) continue;
      const text = decodeHead(bytes);
      // Not UTF-8 after all: not for a prompt.
      if (text !== undefined) found.push([stageId, name, text]);
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
