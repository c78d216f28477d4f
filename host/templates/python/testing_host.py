"""A stand-in for the host, so plain Python runs app.py's Runner end to end.

Inside the component, app.py's imports (`wit_world`, `componentize_py_types`)
are componentize-py's bindings to the host. They do not exist in plain
Python, so `TestHost.install()` puts modules of the same names and shapes in
their place: scripted model answers per alias, upstream artifacts read
through `inputs.read`, captured log lines and printed calls. It is what
`plugin_sdk::testing::TestHost` is for a Rust plugin. See test_app.py.
"""

import sys
import types as pytypes


class Err(Exception):
    """componentize-py's error of a WIT `result`: `.value` is the case."""

    def __init__(self, value):
        super().__init__(value)
        self.value = value


class _Shape(type):
    """A WIT type by name: records and variant cases take their fields,
    enum cases are their own names (`Role.SYSTEM` is "SYSTEM")."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return name


class _Value(metaclass=_Shape):
    def __init__(self, *args, **fields):
        if args:
            self.value = args[0]
        self.__dict__.update(fields)

    def __repr__(self):
        return f"{type(self).__name__}({self.__dict__})"


class _Types(pytypes.ModuleType):
    """A module whose every attribute is a WIT type (made once per name)."""

    def __init__(self, name, **functions):
        super().__init__(name)
        self.__dict__.update(functions)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        shape = _Shape(name, (_Value,), {})
        setattr(self, name, shape)
        return shape


class Call:
    """One model call the plugin made."""

    def __init__(self, alias, messages, params):
        self.alias = alias
        self.messages = messages
        self.params = params

    def prompt(self):
        return "\n".join(m.content for m in self.messages)


class TestHost:
    def __init__(self):
        self.answers = {}
        self.calls = []
        self.logs = []
        self.artifacts = {}

    def answer(self, alias, text):
        """The next call to `alias` answers `text` (answers queue up)."""
        self.answers.setdefault(alias, []).append(("text", text))
        return self

    def fail(self, alias, case, reason):
        """The next call to `alias` fails with model-error `case`
        ("unavailable", "rejected", ...)."""
        self.answers.setdefault(alias, []).append(("error", (case, reason)))
        return self

    def install(self):
        """Puts the stand-in modules where app.py imports from; calls go to
        the host installed last (app.py is imported once, tests install
        a fresh host each)."""
        global _current
        _current = self
        if "wit_world" not in sys.modules:
            _install_modules()
        self.types = sys.modules["wit_world.imports.types"]
        self.models = sys.modules["wit_world.imports.models"]
        return self

    def stage_input(self, task, config="{}", upstream=()):
        """A stage-input: `upstream` is [(stage_id, [(name, media_type, bytes)])],
        handed by reference as the host does, the bytes read through inputs.read."""
        t = self.types
        inputs = []
        for stage_id, artifacts in upstream:
            refs = []
            for name, media_type, data in artifacts:
                self.artifacts[(stage_id, name)] = bytes(data)
                refs.append(t.ArtifactRef(name=name, media_type=media_type, size=len(data), hash=""))
            inputs.append(t.Upstream(stage_id=stage_id, summary="", decision=None, artifacts=refs, metrics=[]))
        return t.StageInput(
            run_id="test-run",
            stage_id="stage",
            task=task,
            config_json=config,
            inputs=inputs,
            attempt=1,
            iteration=0,
            feedback=None,
        )

    def _complete(self, alias, messages, params):
        self.calls.append(Call(alias, messages, params))
        queued = self.answers.get(alias) or []
        if not queued:
            raise Err(self.models.ModelError_NotGranted(f"the test host has no answer for alias '{alias}'"))
        kind, value = queued.pop(0)
        if kind == "error":
            case, reason = value
            name = "ModelError_" + "".join(p.capitalize() for p in case.split("-"))
            raise Err(getattr(self.models, name)(reason))
        return self.models.Completion(
            text=value,
            model=f"test:{alias}",
            input_tokens=sum(len(m.content.split()) for m in messages),
            output_tokens=len(value.split()),
            finish_reason="stop",
        )

    def _read(self, stage_id, name, offset, length):
        data = self.artifacts.get((stage_id, name))
        if data is None:
            raise Err(f"the test host has no artifact '{name}' of stage '{stage_id}'")
        return data[offset : offset + length]


_current = None


def _install_modules():
    types = _Types("wit_world.imports.types")
    models = _Types("wit_world.imports.models", complete=lambda *a: _current._complete(*a))
    log = _Types("wit_world.imports.log", log=lambda level, message: _current.logs.append((level, message)))
    inputs = _Types("wit_world.imports.inputs", read=lambda *a: _current._read(*a))
    imports = pytypes.ModuleType("wit_world.imports")
    imports.types, imports.models, imports.log, imports.inputs = types, models, log, inputs
    world = pytypes.ModuleType("wit_world")
    world.imports = imports
    world.exports = pytypes.SimpleNamespace(Runner=object)
    runtime = pytypes.ModuleType("componentize_py_types")
    runtime.Err = Err
    sys.modules.update(
        {
            "wit_world": world,
            "wit_world.imports": imports,
            "wit_world.imports.types": types,
            "wit_world.imports.models": models,
            "wit_world.imports.log": log,
            "wit_world.imports.inputs": inputs,
            "componentize_py_types": runtime,
        }
    )
