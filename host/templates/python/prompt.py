"""The plugin's logic, free of the WIT bindings so plain Python can test it."""

# Most characters of one upstream artifact put into the prompt.
MAX_INPUT_CHARS = 2000
# Bytes read of an artifact: enough for MAX_INPUT_CHARS of any UTF-8 text.
HEAD_BYTES = 4 * MAX_INPUT_CHARS


def is_text(media_type):
    """Whether an artifact of this media type can go into a prompt."""
    return media_type.startswith("text/") or media_type == "application/json"


def readable(upstream):
    """(stage, name, text) of every upstream text or JSON artifact.

    `upstream` is a list of (stage_id, [(name, media_type, bytes)]).
    """
    found = []
    for stage, artifacts in upstream:
        for name, media_type, data in artifacts:
            if not is_text(media_type):
                continue
            text = decode_head(bytes(data))
            if text is not None:
                found.append((stage, name, text))
    return found


def decode_head(data):
    """UTF-8 text of the head of an artifact, whose last character may be
    cut (up to 3 bytes of it dropped); None if it is not UTF-8."""
    for cut in range(4):
        try:
            return data[: len(data) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


def build_prompt(task, inputs):
    """The user message: the task, then each input under a header."""
    prompt = f"Task:\n{task}\n"
    for stage, name, text in inputs:
        prompt += f"\n--- {stage}/{name} ---\n{text[:MAX_INPUT_CHARS]}\n"
    return prompt
