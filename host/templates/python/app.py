"""{{name}}: a stage plugin for the `host` orchestrator, in Python.

It reads the task and every upstream text or JSON artifact, asks the model
alias named by `config.model` (default "small") about them, and returns the
answer as `{{name}}.md` with an account of its inputs in `{{name}}.json`.

Built into a WebAssembly component by componentize-py: ./build.sh
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import inputs, log, models, types

from prompt import HEAD_BYTES, build_prompt, is_text, readable

DEFAULTS = {
    "model": "small",
    "instruction": "Summarise the inputs in one short paragraph.",
    "max_tokens": 200,
}


def read_head(stage_id, artifact):
    """The first HEAD_BYTES of an upstream artifact, read through the host."""
    try:
        return bytes(inputs.read(stage_id, artifact.name, 0, min(artifact.size, HEAD_BYTES)))
    except Err as e:
        raise fatal(f"cannot read {stage_id}/{artifact.name}: {e.value}")


def fatal(message):
    return Err(types.StageError_Fatal(message))


class Runner(exports.Runner):
    def info(self) -> types.PluginInfo:
        return types.PluginInfo(
            name="{{name}}",
            version="0.1.0",
            description="Asks a model about the task and the upstream artifacts (Python)",
            # What `host validate` checks each stage's grants against: the
            # alias under config `model`, "small" when it is not set.
            capabilities=types.Capabilities(
                models=[
                    types.Need(
                        source=types.NameSource_Config(types.ConfigNames(key="model", fallback=["small"])),
                        required=True,
                    )
                ],
                sessions=[],
                gates=[],
                workspace=types.WorkspaceNeed(access=types.WorkspaceAccess.NONE, required=False),
            ),
        )

    def run(self, input: types.StageInput) -> types.StageOutput:
        try:
            config = {**DEFAULTS, **json.loads(input.config_json)}
        except ValueError as e:
            raise fatal(f"config is not JSON: {e}")
        # Upstream artifacts come as references (name, media type, size,
        # hash): read only the head of the text ones, as much as the prompt
        # can use. A large or binary artifact costs nothing.
        upstream = [
            (
                u.stage_id,
                [
                    (a.name, a.media_type, read_head(u.stage_id, a))
                    for a in u.artifacts
                    if is_text(a.media_type)
                ],
            )
            for u in input.inputs
        ]
        texts = readable(upstream)
        messages = [
            models.Message(role=models.Role.SYSTEM, content=str(config["instruction"])),
            models.Message(role=models.Role.USER, content=build_prompt(input.task, texts)),
        ]
        params = models.Params(max_tokens=int(config["max_tokens"]), temperature=None, stop=[], timeout_ms=None)
        # print() is a line of this attempt's log (host show RUN STAGE --log).
        print(f"asking {config['model']} about {len(texts)} inputs")
        try:
            completion = models.complete(str(config["model"]), messages, params)
        except Err as e:
            # Provider trouble may pass: let the host retry. Anything else will not.
            reason = f"model call failed: {e.value}"
            if isinstance(e.value, models.ModelError_Unavailable):
                raise Err(types.StageError_Retryable(reason))
            raise fatal(reason)
        log.log(log.Level.INFO, f"{config['model']} answered with {completion.output_tokens} tokens")
        account = {
            "alias": config["model"],
            "model": completion.model,
            "inputs": [{"stage": s, "name": n, "chars": len(t)} for s, n, t in texts],
            "output_tokens": completion.output_tokens,
        }
        return types.StageOutput(
            summary=f"{config['model']} answered from {len(texts)} inputs",
            artifacts=[
                types.Artifact(name="{{name}}.md", media_type="text/markdown", bytes=completion.text.encode()),
                types.Artifact(
                    name="{{name}}.json",
                    media_type="application/json",
                    bytes=json.dumps(account, indent=2).encode(),
                ),
            ],
            metrics=[
                types.Metric(name="inputs", value=float(len(texts))),
                types.Metric(name="output_tokens", value=float(completion.output_tokens)),
            ],
            decision=None,
        )
