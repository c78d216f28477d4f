"""A stage plugin in Python: counts the words of the task and of every
upstream text artifact, and reports the most common ones.

Build: componentize-py -d ../../wit -w stage componentize app -o wordcount.wasm
"""

import json
import heapq  # noqa: F401  (Counter.most_common imports it lazily; componentize-py bundles only what is imported)
from collections import Counter

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import inputs, log, types

# The most one read returns (the host's limit): larger artifacts in pieces.
PIECE = 16 << 20


def read_all(stage_id, artifact):
    """An upstream artifact's bytes, read through the host piece by piece."""
    data = bytearray()
    while len(data) < artifact.size:
        try:
            piece = inputs.read(stage_id, artifact.name, len(data), min(PIECE, artifact.size - len(data)))
        except Err as e:
            raise Err(types.StageError_Fatal(f"cannot read {stage_id}/{artifact.name}: {e.value}"))
        if not piece:
            break
        data.extend(piece)
    return bytes(data)


class Runner(exports.Runner):
    def info(self) -> types.PluginInfo:
        return types.PluginInfo(
            name="wordcount-py",
            version="0.1.0",
            description="Counts words in the task and upstream text artifacts (Python)",
            # Needs nothing from the stage's grants: no model, session, gate or workspace.
            capabilities=types.Capabilities(
                models=[],
                sessions=[],
                gates=[],
                workspace=types.WorkspaceNeed(access=types.WorkspaceAccess.NONE, required=False),
            ),
        )

    def run(self, input: types.StageInput) -> types.StageOutput:
        try:
            config = json.loads(input.config_json)
        except ValueError as e:
            raise Err(types.StageError_Fatal(f"config is not JSON: {e}"))
        top = int(config.get("top", 5))
        words = Counter(w.lower().strip(".,!?\"'()") for w in input.task.split())
        for upstream in input.inputs:
            for artifact in upstream.artifacts:
                if artifact.media_type.startswith("text/"):
                    text = read_all(upstream.stage_id, artifact).decode("utf-8", errors="replace")
                    words.update(w.lower().strip(".,!?\"'()") for w in text.split())
        words.pop("", None)
        common = words.most_common(top)
        log.log(log.Level.INFO, f"{sum(words.values())} words, {len(words)} distinct")
        body = json.dumps({"total": sum(words.values()), "top": common}, indent=2).encode()
        return types.StageOutput(
            summary=f"counted {sum(words.values())} words",
            artifacts=[types.Artifact(name="wordcount.json", media_type="application/json", bytes=body)],
            metrics=[types.Metric(name="words", value=float(sum(words.values())))],
            decision=None,
        )
