"""synod harness: loads a candidate program, checks its interface and runs calls on it.

Started by synod-exec as `python3 -s -S -B harness.py` (a cleared environment, PYTHONHASHSEED=0,
so every run hashes strings alike) in a scratch directory whose `prog/`
holds the candidate's modules. It reads one JSON request from stdin and writes one result line
per step, `SYNOD <nonce> <json>`, on a private duplicate of the original stdout:

    {"loaded": true|false, "load_error": str|null, "interface_errors": [str, ...],
     "functions": [{"module": str, "name": str, "params": [str, ...], "required": int}, ...]}
    {"i": index, "outcome": {"value": repr} | {"error": class} | {"timeout": true}, "met": bool|null}
    ...
    {"done": true}

The candidate's own prints go through capped writers to stderr and never reach the result
stream; file descriptor 1 itself is pointed at /dev/null.

Known limit: the candidate runs in this process, so a program that goes looking (walking frames
up to `main`, or probing file descriptors) can find the nonce and the result descriptor and forge
result lines. The nonce only makes forging *by accident* impossible: it arrives on stdin and
lives in a local of `main`, never in a global or the environment. Real isolation comes from the
process limits set by synod-exec, not from this file.

Standard library only; runs on Python 3.8 and newer.
"""

import hashlib
import importlib
import inspect
import io
import json
import math
import os
import re
import signal
import sys
import traceback

# Longest canonical repr kept whole; longer ones keep REPR_KEEP chars plus a hash of the rest.
REPR_MAX = 2000
REPR_KEEP = 1000
# Longest load error and interface error messages.
MESSAGE_MAX = 500
INTERFACE_ERROR_MAX = 200
# Most functions listed from a loaded program.
FUNCTIONS_MAX = 256

# Where this file (and the audit layer beside it) is, before `main` changes directory.
_HERE = os.path.dirname(os.path.abspath(__file__))
# The scratch directory is no module path: candidates' modules come from prog/ only. Python 3.11
# and newer leave it out (PYTHONSAFEPATH); older ones put it first.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


class _Timeout(BaseException):
    """Raised by the SIGALRM handler when a guarded step runs out of time."""


# Called once when the candidate prints something shaped like a result line (set by `main`
# when the audit hook is on): contained is not enough, the attempt is reported.
_ON_FORGERY = [None]


class _CappedBinary(io.RawIOBase):
    """A binary writer to `fd` that drops everything past a byte budget shared with others."""

    def __init__(self, fd, budget):
        super().__init__()
        self._fd = fd
        self._budget = budget
        self._tail = b""

    def writable(self):
        return True

    def write(self, data):
        data = bytes(data)
        # Without copying a large write: the write itself, and its start after the last bytes.
        if _ON_FORGERY[0] is not None and (
            b"SYNOD " in data or b"SYNOD " in self._tail + data[:5]
        ):
            report, _ON_FORGERY[0] = _ON_FORGERY[0], None
            report()
        self._tail = (self._tail + data[-5:])[-5:]
        room = self._budget[0]
        if room > 0:
            kept = data[:room]
            self._budget[0] = room - len(kept)
            try:
                _write_all(self._fd, kept)
            except OSError:
                self._budget[0] = 0
        return len(data)


class _CappedText(io.TextIOBase):
    """A text writer standing in for sys.stdout / sys.stderr, over a `_CappedBinary`."""

    def __init__(self, binary, name):
        super().__init__()
        self.buffer = binary
        self.name = name

    @property
    def encoding(self):
        return "utf-8"

    @property
    def errors(self):
        return "backslashreplace"

    def writable(self):
        return True

    def isatty(self):
        return False

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not " + type(text).__name__)
        self.buffer.write(text.encode("utf-8", "backslashreplace"))
        return len(text)

    def flush(self):
        pass


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _clean(text, limit=None):
    """`text` as valid UTF-8 (lone surrogates escaped), cut to `limit` characters."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def _guarded(step, seconds):
    """Runs `step()` with an alarm after `seconds`.

    Returns ("ok", result), ("error", exception) or ("timeout", None). A step that swallows the
    alarm exception and returns anyway still counts as timed out.
    """
    fired = [False]

    def on_alarm(signum, frame):
        fired[0] = True
        raise _Timeout()

    signal.signal(signal.SIGALRM, on_alarm)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, seconds)
            result = step()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Timeout:
        return ("timeout", None)
    except BaseException as exc:  # noqa: B036 - the candidate may raise anything
        if fired[0]:
            return ("timeout", None)
        return ("error", exc)
    if fired[0]:
        return ("timeout", None)
    return ("ok", result)


def _class_name(exc):
    return _clean(type(exc).__name__, INTERFACE_ERROR_MAX)


def _describe(exc):
    """`Class: message`, for load errors (SyntaxError messages carry the line number)."""
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break the harness
        message = "<unprintable message>"
    if message:
        return type(exc).__name__ + ": " + message
    return type(exc).__name__


def _stdlib_names():
    names = getattr(sys, "stdlib_module_names", None)
    if names is not None:
        return frozenset(names)
    # Python < 3.10: builtin modules plus whatever sits in the standard library directories.
    import pkgutil
    import sysconfig

    found = set(sys.builtin_module_names)
    paths = sysconfig.get_paths()
    dirs = [paths["stdlib"], paths["platstdlib"], os.path.join(paths["stdlib"], "lib-dynload")]
    for info in pkgutil.iter_modules([d for d in dirs if os.path.isdir(d)]):
        found.add(info.name)
    return frozenset(found)


# ---------------------------------------------------------------------------------------------
# Values


def _decode(tagged):
    """A Python value from the tagged form of synod_core::Value."""
    tag = tagged["t"]
    if tag == "none":
        return None
    body = tagged["v"]
    if tag == "bool":
        if not isinstance(body, bool):
            raise TypeError("bool value is not a boolean")
        return body
    if tag == "int":
        if isinstance(body, bool) or not isinstance(body, int):
            raise TypeError("int value is not an integer")
        return body
    if tag == "float":
        return float(body)
    if tag == "str":
        if not isinstance(body, str):
            raise TypeError("str value is not a string")
        return body
    if tag == "list":
        return [_decode(item) for item in body]
    if tag == "tuple":
        return tuple(_decode(item) for item in body)
    if tag == "dict":
        result = {}
        for key, value in body:
            result[_decode(key)] = _decode(value)
        return result
    raise ValueError("unknown value tag " + repr(tag))


# --- canonical text: begin. synod-exec copies this region into the test_contract.py a build
# writes (`synod_exec::canonical_source`), so both read a value alike; it needs `re`, `sys`.
# Nesting below this depth is shown as "...".
DEPTH_MAX = 20
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _int_text(value):
    try:
        return int.__repr__(value)
    except ValueError:
        # Python 3.11+ refuses to print ints of more than 4300 digits by default.
        old = sys.get_int_max_str_digits()
        sys.set_int_max_str_digits(0)
        try:
            return int.__repr__(value)
        finally:
            sys.set_int_max_str_digits(old)


def _canonical(value, depth):
    """The canonical repr: like repr, but dicts and sets sorted, addresses removed, -0.0 as 0.0.

    Subclasses of the builtin scalars and containers are shown as their base type, so that a
    namedtuple reads like a tuple and an OrderedDict like a dict.
    """
    if depth > DEPTH_MAX:
        return "..."
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return _int_text(value)
    if isinstance(value, float):
        # -0.0 == 0.0, hashes alike, and meets every expectation 0.0 does: one value, one text.
        # (MBPP task 14 split two correct readings of a volume on `-0.0` against `0.0` alone.)
        if value == 0.0:
            return "0.0"
        return float.__repr__(value)
    if isinstance(value, str):
        return str.__repr__(value)
    if isinstance(value, list):
        return "[" + ", ".join(_canonical(item, depth + 1) for item in list.__iter__(value)) + "]"
    if isinstance(value, tuple):
        items = [_canonical(item, depth + 1) for item in tuple.__iter__(value)]
        if len(items) == 1:
            return "(" + items[0] + ",)"
        return "(" + ", ".join(items) + ")"
    if isinstance(value, dict):
        entries = sorted(
            (_canonical(key, depth + 1), _canonical(item, depth + 1))
            for key, item in dict.items(value)
        )
        return "{" + ", ".join(key + ": " + item for key, item in entries) + "}"
    if isinstance(value, frozenset):
        items = sorted(_canonical(item, depth + 1) for item in frozenset.__iter__(value))
        return "frozenset({" + ", ".join(items) + "})" if items else "frozenset()"
    if isinstance(value, set):
        items = sorted(_canonical(item, depth + 1) for item in set.__iter__(value))
        return "{" + ", ".join(items) + "}" if items else "set()"
    return _ADDRESS.sub("", repr(value))


# --- canonical text: end


def _canonical_text(value):
    full = _canonical(value, 0)
    if len(full) > REPR_MAX:
        digest = hashlib.blake2b(full.encode("utf-8", "surrogatepass"), digest_size=16)
        full = full[:REPR_KEEP] + "...<" + digest.hexdigest() + ">"
    return _clean(full)


def _matches(actual, expected):
    """Does `actual` equal `expected` (a decoded, plain value) under synod's normalisation?

    Tuples equal lists, ints and floats compare numerically (floats within a relative 1e-9),
    dicts compare key by key with their values normalised, and bools never equal ints.
    """
    if expected is None:
        return actual is None
    if isinstance(expected, bool):
        return isinstance(actual, bool) and bool(actual) == expected
    if isinstance(expected, (int, float)):
        if isinstance(actual, bool) or not isinstance(actual, (int, float)):
            return False
        if isinstance(expected, int) and isinstance(actual, int):
            return int(actual) == expected
        try:
            return math.isclose(float(actual), float(expected), rel_tol=1e-9, abs_tol=0.0)
        except OverflowError:
            return False
    if isinstance(expected, str):
        return isinstance(actual, str) and str.__eq__(actual, expected)
    if isinstance(expected, (list, tuple)):
        if not isinstance(actual, (list, tuple)):
            return False
        items = list(actual)
        return len(items) == len(expected) and all(
            _matches(a, e) for a, e in zip(items, expected)
        )
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or len(actual) != len(expected):
            return False
        for key, item in expected.items():
            if not dict.__contains__(actual, key):
                return False
            if not _matches(dict.__getitem__(actual, key), item):
                return False
        return True
    return False


# ---------------------------------------------------------------------------------------------
# Steps


def _load(module_names, modules_dir, seconds):
    """Imports the candidate's modules. Returns (modules by name, error or None)."""
    stdlib = _stdlib_names()
    for name in module_names:
        if name in stdlib:
            return {}, (
                "module name " + repr(name) + " is a standard-library module; "
                "the program must use another name"
            )
        if name in sys.modules:
            return {}, "module name " + repr(name) + " clashes with a module the harness uses"
    sys.path.insert(0, os.path.abspath(modules_dir))
    importlib.invalidate_caches()
    loaded = {}
    for name in module_names:
        kind, result = _guarded(lambda: importlib.import_module(name), seconds)
        if kind == "timeout":
            return {}, "TimeoutError: importing module " + repr(name) + " did not finish in time"
        if kind == "error":
            kind, text = _guarded(lambda: _describe(result), seconds)
            if kind != "ok":
                text = type(result).__name__
            return {}, _clean(text + " (importing module " + repr(name) + ")", MESSAGE_MAX)
        loaded[name] = result
    return loaded, None


def _load_audit():
    """The audit layer, loaded from beside this file (not registered in sys.modules)."""
    import importlib.util

    path = os.path.join(_HERE, "synod_audit.py")
    spec = importlib.util.spec_from_file_location("synod_audit", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sources(module_names, modules_dir):
    """Each module's source text, as the static layer reads it."""
    sources = {}
    for name in module_names:
        try:
            with open(os.path.join(modules_dir, name + ".py"), "rb") as f:
                sources[name] = f.read().decode("utf-8", "replace")
        except OSError:
            sources[name] = ""
    return sources


def _interface_errors(loaded, interface):
    errors = []
    for module_name, sig in interface:
        name = sig["name"]
        expected = list(sig["params"])
        where = module_name + "." + name
        module = loaded.get(module_name)
        if module is None:
            errors.append(where + ": module " + module_name + " is not in the program")
            continue
        function = getattr(module, name, None)
        if function is None:
            errors.append(where + ": missing")
            continue
        if not callable(function):
            errors.append(where + ": not callable")
            continue
        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):
            errors.append(where + ": signature cannot be read")
            continue
        positional = [
            p.name
            for p in parameters
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if positional != expected:
            errors.append(
                where + ": parameters (" + ", ".join(positional) + "), expected ("
                + ", ".join(expected) + ")"
            )
    return [_clean(e, INTERFACE_ERROR_MAX) for e in errors]


def _functions(loaded):
    """The public functions each module defines (not imports), in definition order."""
    found = []
    for module_name, module in loaded.items():
        for name, obj in list(vars(module).items()):
            if name.startswith("_") or not inspect.isfunction(obj):
                continue
            if getattr(obj, "__module__", None) != module_name:
                continue
            try:
                parameters = list(inspect.signature(obj).parameters.values())
            except (TypeError, ValueError):
                continue
            positional = [
                p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
            found.append({
                "module": module_name,
                "name": name,
                "params": [p.name for p in positional],
                "required": sum(1 for p in positional if p.default is p.empty),
            })
            if len(found) >= FUNCTIONS_MAX:
                return found
    return found


def _run_call(loaded, function_modules, call, seconds):
    """Runs one call. Returns (outcome, met)."""
    expect = call.get("expect")
    try:
        args = [_decode(arg) for arg in call["args"]]
        expected_value = None
        if expect is not None and "returns" in expect:
            expected_value = _decode(expect["returns"])
    except Exception as exc:  # noqa: BLE001 - a malformed argument is reported as its class
        return {"error": _class_name(exc)}, (False if expect is not None else None)

    def step():
        module = loaded.get(function_modules.get(call["function"], ""))
        function = getattr(module, call["function"], None) if module is not None else None
        if function is None:
            return ("error", ["AttributeError", "Exception", "BaseException", "object"])
        try:
            value = function(*args)
        except _Timeout:
            raise
        except BaseException as exc:  # noqa: B036 - the candidate may raise anything
            return ("error", [k.__name__ for k in type(exc).__mro__])
        text = _canonical_text(value)
        met = None
        if expect is not None and "returns" in expect:
            met = _matches(value, expected_value)
        return ("value", text, met)

    kind, result = _guarded(step, seconds)
    if kind == "timeout":
        return {"timeout": True}, (False if expect is not None else None)
    if kind == "error":
        # Raised while showing or comparing the result (a bad __repr__, MemoryError, ...).
        return {"error": _class_name(result)}, (False if expect is not None else None)
    if result[0] == "error":
        names = result[1]
        met = None
        if expect is not None:
            met = "raises" in expect and expect["raises"] in names
        return {"error": _clean(names[0], INTERFACE_ERROR_MAX)}, met
    _, text, met = result
    if expect is not None and met is None:
        met = False
    return {"value": text}, met


def main():
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    nonce = request["nonce"]  # kept in this local only: see the module docstring
    seconds = max(int(request["call_ms"]), 1) / 1000.0

    # Results go to a private duplicate of stdout; fds 0 and 1 become /dev/null so that neither
    # the candidate nor its children can write into the result stream by accident.
    result_fd = os.dup(1)
    null_fd = os.open(os.devnull, os.O_RDWR)
    os.dup2(null_fd, 0)
    os.dup2(null_fd, 1)
    os.close(null_fd)
    budget = [max(int(request["output_max"]), 0)]
    sys.stdout = _CappedText(_CappedBinary(2, budget), "<stdout>")
    sys.stderr = _CappedText(_CappedBinary(2, budget), "<stderr>")
    sys.stdin = io.TextIOWrapper(io.BytesIO(b""))

    def emit(record):
        line = "SYNOD " + nonce + " " + json.dumps(record, ensure_ascii=True) + "\n"
        _write_all(result_fd, line.encode("ascii"))

    # The candidate works in `work/` (a tmpfs of the run's quota where the kernel allows it;
    # the only place it may write); the program's modules stay where they are, read-only.
    request["modules_dir"] = os.path.abspath(request["modules_dir"])
    if os.path.isdir("work"):
        os.chdir("work")

    # The audit layer (synod_audit.py beside this file), before any candidate code: the static
    # allow-list first; a program it rejects is never imported. Then the audit hook, whose
    # reports go out on the result stream the moment an operation is refused.
    audit = _load_audit()
    capabilities = frozenset(request.get("capabilities", []))
    if request.get("static_layer", True):
        violations = audit.static_violations(
            _sources(request["modules"], request["modules_dir"]), capabilities
        )
        if violations:
            first = violations[0]
            emit({
                "loaded": False,
                "load_error": _clean(
                    "not run: " + first["detail"] + " (module " + first["module"] + " line "
                    + str(first["line"]) + ")",
                    MESSAGE_MAX,
                ),
                "interface_errors": [],
                "violations": violations,
            })
            emit({"done": True})
            return
    if request.get("runtime_layer", True):
        encode = audit.encode
        write = os.write
        prefix = ("SYNOD " + nonce + " ").encode("ascii")

        def report(violation):
            line = prefix + encode({"violation": violation}).encode("ascii") + b"\n"
            try:
                write(result_fd, line)
            except OSError:
                pass

        read_dirs = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                     os.path.abspath(request["modules_dir"])]
        audit.install(report, capabilities, read_dirs, os.getcwd())
        forged = audit.forged_output_violation()
        _ON_FORGERY[0] = lambda: report(forged)

    loaded, load_error = _load(request["modules"], request["modules_dir"], seconds)
    if load_error is not None:
        emit({"loaded": False, "load_error": load_error, "interface_errors": []})
        emit({"done": True})
        return
    kind, errors = _guarded(lambda: _interface_errors(loaded, request["interface"]), seconds)
    if kind == "timeout":
        errors = ["interface check did not finish in time"]
    elif kind == "error":
        errors = ["interface check failed: " + _class_name(errors)]
    kind, functions = _guarded(lambda: _functions(loaded), seconds)
    if kind != "ok":
        functions = []
    emit({"loaded": True, "load_error": None, "interface_errors": errors, "functions": functions})

    function_modules = request["function_modules"]
    for index, call in enumerate(request["calls"]):
        outcome, met = _run_call(loaded, function_modules, call, seconds)
        emit({"i": index, "outcome": outcome, "met": met})
    emit({"done": True})


if __name__ == "__main__":
    try:
        main()
    except BaseException:  # noqa: B036 - report any harness failure, then stop
        try:
            os.write(2, ("synod harness failed:\n" + traceback.format_exc()).encode("utf-8", "replace"))
        except OSError:
            pass
        os._exit(3)
    # Skip interpreter shutdown: candidate threads and atexit handlers must not delay the end.
    os._exit(0)
