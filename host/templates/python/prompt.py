"""The plugin's logic, free of the WIT bindings so plain Python can test it."""

# Most characters of one upstream artifact put into the prompt.
MAX_INPUT_CHARS = 2000


def readable(upstream):
    """(stage, name, text) of every upstream text or JSON artifact.

    `upstream` is a list of (stage_id, [(name, media_type, bytes)]).
    """
    found = []
    for stage, artifacts in upstream:
        for name, media_type, data in artifacts:
            if not (media_type.startswith("text/") or media_type == "application/json"):
                continue
            try:
                found.append((stage, name, bytes(data).decode("utf-8")))
            except UnicodeDecodeError:
                continue
    return found


def build_prompt(task, inputs):
    """The user message: the task, then each input under a header."""
    prompt = f"Task:\n{task}\n"
    for stage, name, text in inputs:
        prompt += f"\n--- {stage}/{name} ---\n{text[:MAX_INPUT_CHARS]}\n"
    return prompt
