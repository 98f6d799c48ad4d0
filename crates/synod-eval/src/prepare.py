"""synod-eval task preparation: rewrites and mutants of a reference solution.

Reads one JSON object on stdin:
  {"code": str, "tests": [assert source], "setup": str, "k": int, "seed": int,
   "entry": str or null, "kind": "functions" or "classeval", "skeleton": str or null,
   "limits": {...}}
where "limits" holds every field of prepare.rs's `PrepareLimits` (see `Limits` below); this
script has no limits of its own.
and writes one JSON object on stdout:
  {"ok": bool, "why": str, "entry": str, "params": [str], "example_args": [tagged],
   "probe_steps": [tagged] (ClassEval: run() steps for probes, from the skeleton),
   "example_returns": tagged or null, "reference_passes": [bool],
   "rewrites": [src], "mutants": [{"src", "kind", "passes_example", "hidden_failed"}]}

Trusted code run on the dataset's reference (not on agent output). Mutants are buggy, not
hostile: each test runs under an interval timer and the process under RLIMIT_AS. Past the
wall-clock limit the next test run stops the preparation ({"ok": false}); the caller kills a
process that does not stop.
Tests: tests[0] is the example an agent sees; tests[1:] are hidden.
"""

import ast
import contextlib
import copy
import io
import json
import math
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import time



class Limits:
    """The caller's limits (prepare.rs, `PrepareLimits`); each field is required."""

    FIELDS = ("wall_ms", "test_timeout_ms", "memory_bytes_max", "value_depth_max",
              "example_steps_max", "probe_steps_max", "example_repeats", "timing_runs",
              "rewrite_tries_per_program", "mutant_tries_per_program")

    def __init__(self, fields):
        missing = [f for f in self.FIELDS if not isinstance(fields.get(f), int)]
        if missing:
            raise ValueError("request limits lack a whole number for " + ", ".join(missing))
        for f in self.FIELDS:
            setattr(self, f, fields[f])
        self.test_seconds = self.test_timeout_ms / 1000.0
        self.deadline = time.monotonic() + self.wall_ms / 1000.0


# Set by main() from the request, before anything runs.
LIMITS = None


class _Timeout(BaseException):  # not caught by `except Exception` in candidates
    pass


class _PastDeadline(BaseException):
    """The wall-clock limit has passed: the preparation stops (raised between test runs)."""


def _alarm(_sig, _frm):
    raise _Timeout()


signal.signal(signal.SIGALRM, _alarm)


def _guard(fn):
    signal.setitimer(signal.ITIMER_REAL, LIMITS.test_seconds)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


@contextlib.contextmanager
def _fresh_dir():
    """Runs the block in a new empty directory (tests write files where they stand), then
    removes it, so no run sees another's leftovers."""
    home = os.getcwd()
    d = tempfile.mkdtemp(prefix="run-", dir=home)
    os.chdir(d)
    try:
        yield
    finally:
        os.chdir(home)
        shutil.rmtree(d, ignore_errors=True)


def run_tests(src, setup, tests):
    """One bool per test: did it pass against the program `src`?"""
    if time.monotonic() > LIMITS.deadline:
        raise _PastDeadline()
    with _fresh_dir():
        return _run_tests(src, setup, tests)


def _run_tests(src, setup, tests):
    g = {"__name__": "solution"}
    try:
        _guard(lambda: exec(compile(src, "solution.py", "exec"), g))
        _guard(lambda: exec(setup, g))
    except BaseException:
        return [False] * len(tests)
    out = []
    for t in tests:
        env = dict(g)
        try:
            _guard(lambda: exec(t, env))
            out.append(True)
        except BaseException:
            out.append(False)
    return out


def tagged(v, depth=0):
    """A Python value in synod_core::Value's serde form, or raise ValueError."""
    if depth > LIMITS.value_depth_max:
        raise ValueError("too deep")
    if v is None:
        return {"t": "none"}
    if isinstance(v, bool):
        return {"t": "bool", "v": v}
    if isinstance(v, int):
        if -(2**63) <= v < 2**63:
            return {"t": "int", "v": v}
        raise ValueError("int out of range")
    if isinstance(v, float):
        if math.isfinite(v):
            return {"t": "float", "v": repr(v)}
        raise ValueError("non-finite float")
    if isinstance(v, str):
        return {"t": "str", "v": v}
    if isinstance(v, list):
        return {"t": "list", "v": [tagged(x, depth + 1) for x in v]}
    if isinstance(v, tuple):
        return {"t": "tuple", "v": [tagged(x, depth + 1) for x in v]}
    if isinstance(v, dict):
        return {"t": "dict", "v": [[tagged(a, depth + 1), tagged(b, depth + 1)] for a, b in v.items()]}
    raise ValueError("unsupported type " + type(v).__name__)


def top_defs(tree):
    return [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def find_entry(tree, test):
    names = {d.name for d in top_defs(tree)}
    for node in ast.walk(ast.parse(test)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names:
            return node.func.id
    return None


def example_call(test, entry):
    for node in ast.walk(ast.parse(test)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == entry:
            if node.keywords:
                raise ValueError("example call uses keyword arguments")
            return [ast.literal_eval(a) for a in node.args]
    raise ValueError("example does not call " + entry)


# ---------------------------------------------------------------- rewrites (same behaviour)

class _Renamer(ast.NodeTransformer):
    def __init__(self, mapping):
        self.mapping = mapping

    def visit_Name(self, node):
        if node.id in self.mapping:
            node.id = self.mapping[node.id]
        return node


def _locals_of(fn):
    params = {a.arg for a in fn.args.args + fn.args.kwonlyargs + fn.args.posonlyargs}
    if fn.args.vararg:
        params.add(fn.args.vararg.arg)
    if fn.args.kwarg:
        params.add(fn.args.kwarg.arg)
    declared = set()
    stored = set()
    for node in ast.walk(fn):
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            declared.update(node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            stored.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and node is not fn:
            a = node.args
            for x in a.args + a.kwonlyargs + a.posonlyargs:
                declared.add(x.arg)  # nested parameters: leave alone
    return sorted(stored - params - declared)


STYLES = [
    lambda s, i: "%s_%d" % (s, i),
    lambda s, i: "v%d_%s" % (i, s[:3]),
    lambda s, i: "_" + s,
    lambda s, i: s.upper() + "_",
    lambda s, i: "tmp%d" % i,
]


def rewrite(code, rng, style):
    tree = ast.parse(code)
    for fn in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
        names = _locals_of(fn)
        mapping = {n: STYLES[style % len(STYLES)](n, i) for i, n in enumerate(names)}
        for stmt in fn.body:
            _Renamer(mapping).visit(stmt)
    # Reorder top-level definitions (all defined before any call) and flip if/else.
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    rest = [n for n in tree.body if n not in imports and n not in defs]
    if not rest:
        rng.shuffle(defs)
        tree.body = imports + defs
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and node.orelse and rng.random() < 0.5:
            node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
            node.body, node.orelse = node.orelse, node.body
    ast.fix_missing_locations(tree)
    src = ast.unparse(tree)
    if style % 2 == 1:
        src = "# solution\n\n" + src.replace("\n\ndef ", "\n\n\ndef ")
    if style % 3 == 2:
        src = src.replace("    ", "  ")
    return src + "\n"


# ---------------------------------------------------------------- mutants (different behaviour)

CMP_FLIP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
            ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In}
BIN_FLIP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.FloorDiv: ast.Mod,
            ast.Mod: ast.FloorDiv, ast.Div: ast.Mult}


def _sites(tree):
    """(index, kind) of every mutable spot, in walk order."""
    out = []
    for i, node in enumerate(ast.walk(tree)):
        if isinstance(node, ast.Compare) and type(node.ops[0]) in CMP_FLIP:
            out.append((i, "flipped comparison"))
        if isinstance(node, ast.BinOp) and type(node.op) in BIN_FLIP:
            out.append((i, "swapped operator"))
        if isinstance(node, ast.Constant) and type(node.value) is int:
            out.append((i, "off-by-one"))
        if isinstance(node, ast.If):
            out.append((i, "dropped branch"))
        if isinstance(node, ast.Call) and len(node.args) >= 2:
            out.append((i, "swapped arguments"))
        if isinstance(node, ast.BoolOp):
            out.append((i, "and/or"))
        if isinstance(node, ast.Return) and node.value is not None:
            out.append((i, "negated return"))
    return out


def mutate(code, index, kind):
    tree = ast.parse(code)
    node = list(ast.walk(tree))[index]
    if kind == "flipped comparison":
        node.ops[0] = CMP_FLIP[type(node.ops[0])]()
    elif kind == "swapped operator":
        node.op = BIN_FLIP[type(node.op)]()
    elif kind == "off-by-one":
        node.value = node.value + 1
    elif kind == "dropped branch":
        node.body = [ast.Pass()] if not node.orelse else node.orelse
        node.orelse = []
    elif kind == "swapped arguments":
        node.args[0], node.args[1] = node.args[1], node.args[0]
    elif kind == "and/or":
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif kind == "negated return":
        node.value = ast.UnaryOp(op=ast.Not(), operand=node.value)
    ast.fix_missing_locations(tree)
    return ast.unparse(tree) + "\n"


# ---------------------------------------------------------------- ClassEval examples


def classeval_example(skeleton, cls):
    """Every doctest of the skeleton, in order, as one run() script: each object it makes
    (an ["__init__", args] step) and the method calls on it, with arguments that are literals
    or doctest variables holding literals."""
    script, objects, current, names = [], {}, None, {}
    methods = set()
    for node in ast.walk(ast.parse(skeleton)):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            methods = {f.name for f in node.body if isinstance(f, ast.FunctionDef)}

    def value_of(a):
        # A literal, or a doctest variable that holds one (`>>> cart = [...]`).
        if isinstance(a, ast.Name) and a.id in names:
            return copy.deepcopy(names[a.id])
        return ast.literal_eval(a)

    for line in skeleton.splitlines():
        line = line.strip()
        if not line.startswith(">>> "):
            continue
        try:
            node = ast.parse(line[4:]).body[0]
        except (SyntaxError, IndexError):
            continue
        value = getattr(node, "value", None)
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and not isinstance(value, ast.Call)):
            try:
                names[node.targets[0].id] = value_of(value)
                tagged(names[node.targets[0].id])
            except (ValueError, SyntaxError, TypeError):
                names.pop(node.targets[0].id, None)
            continue
        if not isinstance(value, ast.Call) or value.keywords:
            continue
        try:
            args = [value_of(a) for a in value.args]
            tagged(args)
        except (ValueError, SyntaxError, TypeError):
            args = None
        f = value.func
        if isinstance(node, ast.Assign) and isinstance(f, ast.Name) and f.id == cls:
            if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                name = node.targets[0].id
                objects[name] = args  # None: made from something that is not a literal
                if current == name:
                    current = None
            continue
        if (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                and f.value.id not in objects and f.value.id not in names
                and f.value.id != cls and f.attr in methods):
            # A doctest that uses an object it never made (`>>> system.add_student(...)`):
            # made with no arguments.
            objects[f.value.id] = []
        if (args is not None and isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                and objects.get(f.value.id) is not None):
            # The script holds one object at a time: a call on another doctest object makes
            # that one afresh (its earlier calls are not replayed).
            if current != f.value.id:
                script.append(["__init__", objects[f.value.id]])
                current = f.value.id
            script.append([f.attr, args])
        if len(script) >= LIMITS.example_steps_max:
            break
    return script if any(s[0] != "__init__" for s in script) else []


# A sample value per documented parameter type (`:param x: int`, or an annotation); the probes
# vary it by type. The first matching prefix wins.
_TYPE_SAMPLES = [
    ("bool", True), ("int", 3), ("float", 2.5), ("str", "abc"), ("list", [1, 2]),
    ("dict", {"a": 1}), ("tuple", (1, 2)),
]
# Parameters without a type: a guess from the name, else an int.
_NAME_SAMPLES = [
    (("name", "text", "string", "word", "key", "path", "url", "email", "title", "s", "char",
      "expression", "command", "message", "content", "query", "sentence", "code"), "abc"),
    (("list", "items", "values", "nums", "numbers", "data", "arr"), [1, 2]),
]


def _sample(type_text, name):
    if type_text:
        t = type_text.strip().lower()
        for prefix, value in _TYPE_SAMPLES:
            if t.startswith(prefix):
                return value
    low = name.lower()
    for names, value in _NAME_SAMPLES:
        if low in names or any(low.endswith("_" + n) for n in names):
            return value
    return 1


def skeleton_steps(skeleton, cls, example):
    """Steps for probes (never for the contract): every public method the example script does
    not call, once, with a sample argument per required parameter from its documented type.
    A leading ["__init__", args] step comes first when the example makes no object and the
    constructor needs arguments."""
    tree = ast.parse(skeleton)
    cdef = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls), None)
    if cdef is None:
        return []
    called = {s[0] for s in example}
    steps = []
    for fn in cdef.body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        if fn.name != "__init__" and (fn.name.startswith("_") or fn.name in called):
            continue
        decorators = {d.id for d in fn.decorator_list if isinstance(d, ast.Name)}
        if "property" in decorators:
            continue
        a = fn.args
        if a.vararg or a.kwarg or a.kwonlyargs:
            continue
        params = a.posonlyargs + a.args
        if "staticmethod" not in decorators:
            params = params[1:]  # self or cls
        required = params[: len(params) - len(a.defaults)]
        doc = ast.get_docstring(fn) or ""
        types, in_order = {}, []
        for line in doc.splitlines():
            line = line.strip()
            if line.startswith(":param "):
                head, _, rest = line[len(":param "):].partition(":")
                types[head.strip().split()[-1] if head.strip() else ""] = rest
                in_order.append(rest)
        args = []
        for j, p in enumerate(required):
            ann = ast.unparse(p.annotation) if p.annotation is not None else None
            # A misspelt :param name (the dataset has some) is matched by position.
            by_position = in_order[j] if len(in_order) == len(params) else None
            args.append(_sample(types.get(p.arg) or ann or by_position, p.arg))
        if fn.name == "__init__":
            if required and not any(s[0] == "__init__" for s in example):
                steps.insert(0, ["__init__", args])
            continue
        steps.append([fn.name, args])
        if len(steps) >= LIMITS.probe_steps_max:
            break
    try:
        tagged(steps)
    except ValueError:
        return []
    return steps


def classeval_tests(req, code, setup, tests):
    """Replaces the placeholder example test with run(script) == the reference's result."""
    skeleton = req.get("skeleton") or ""
    cls = next((n.name for n in ast.parse(skeleton).body if isinstance(n, ast.ClassDef)), "")
    script = classeval_example(skeleton, cls)

    def fresh_run(script):
        g = {"__name__": "solution"}
        _guard(lambda: exec(compile(code, "solution.py", "exec"), g))
        _guard(lambda: exec(setup, g))
        with _fresh_dir():
            result = _guard(lambda: g["run"](script))
        return result, repr(result)

    try:
        result, text = fresh_run(script)
        # A step whose result differs between runs (shuffled decks, random boards) is no
        # example: it is dropped, and the rest must then repeat exactly. Several runs, since
        # a small random board repeats by chance (1 in 9 for a 3×3 board with one mine).
        again = [fresh_run(script)[0] for _ in range(LIMITS.example_repeats)]
        if any(repr(a) != text for a in again):
            calls = [i for i, s in enumerate(script) if s[0] != "__init__"]
            differ = {calls[k] for a in again
                      for k in range(min(len(result), len(a), len(calls)))
                      if repr(result[k]) != repr(a[k])}
            script = [s for i, s in enumerate(script) if i not in differ]
            if not any(s[0] != "__init__" for s in script):
                script = []
            result, text = fresh_run(script)
            if any(fresh_run(script)[1] != text for _ in range(LIMITS.example_repeats)):
                script = []
                result, text = fresh_run(script)
    except BaseException:  # noqa: B036 - the doctest does not run as a script: no calls
        script = []
        result, text = fresh_run(script)
    try:
        tagged(result)
        same = ast.literal_eval(repr(result)) == result
    except Exception:
        same = False
    example = "assert run(%r) == %r" % (script, result) if same else "run(%r)" % (script,)
    return [example] + list(tests[1:]), skeleton_steps(skeleton, cls, script)


def missing_package(code, setup):
    """The name of a module the reference or its tests import that is not installed."""
    g = {"__name__": "solution"}
    for src in (code, setup):
        try:
            _guard(lambda: exec(compile(src, "solution.py", "exec"), g))
        except ModuleNotFoundError as e:
            return e.name or str(e)
        except BaseException:
            return None
    return None


def main(req):
    memory = LIMITS.memory_bytes_max
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    code, tests, setup = req["code"], req["tests"], req.get("setup", "")
    k, rng = req["k"], random.Random(req["seed"])
    out = {"ok": False, "why": "", "rewrites": [], "mutants": []}
    missing = missing_package(code, setup)
    if missing:
        out["why"] = "needs package %s (not installed)" % missing
        return out
    if req.get("kind") == "classeval":
        try:
            tests, steps = classeval_tests(req, code, setup, tests)
            out["probe_steps"] = [tagged(step) for step in steps]
        except BaseException as e:  # noqa: B036 - the reference's own failure
            out["why"] = "reference fails the example script: %s" % type(e).__name__
            return out
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        out["why"] = "reference does not parse: %s" % e
        return out
    entry = req.get("entry") or find_entry(tree, tests[0])
    if entry is None:
        out["why"] = "no top-level function of the reference is called by the example"
        return out
    fn = next((d for d in top_defs(tree) if d.name == entry), None)
    if fn is None:
        out["why"] = "entry point %s not defined at top level" % entry
        return out
    a = fn.args
    if a.vararg or a.kwarg or a.kwonlyargs:
        out["why"] = "entry point takes *args, **kwargs or keyword-only parameters"
        return out
    out["entry"] = entry
    out["params"] = [x.arg for x in a.posonlyargs + a.args]
    try:
        args = example_call(tests[0], entry)
        out["example_args"] = [tagged(x) for x in args]
    except (ValueError, SyntaxError) as e:
        out["why"] = "example inputs are not plain values: %s" % e
        return out
    g = {"__name__": "solution"}
    try:
        _guard(lambda: exec(compile(code, "solution.py", "exec"), g))
        ret = _guard(lambda: g[entry](*example_call(tests[0], entry)))
        out["example_returns"] = tagged(ret)
    except BaseException:
        out["example_returns"] = None
    passes = run_tests(code, setup, tests)
    out["reference_passes"] = passes
    # The reference's slowest test (best of a few), for the per-call budget of probe runs.
    slowest = 0.0
    for t in tests:
        best = None
        for _ in range(LIMITS.timing_runs):
            t0 = time.perf_counter()
            run_tests(code, setup, [t])
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        slowest = max(slowest, best)
    out["reference_ms"] = slowest * 1000.0
    if not all(passes):
        out["why"] = "reference fails its own tests"
        return out
    seen = {code}
    for style in range(k * LIMITS.rewrite_tries_per_program):
        if len(out["rewrites"]) >= k:
            break
        try:
            src = rewrite(code, rng, style + req["seed"])
        except Exception:
            continue
        if src in seen or not all(run_tests(src, setup, tests)):
            continue
        seen.add(src)
        out["rewrites"].append(src)
    sites = _sites(tree)
    rng.shuffle(sites)
    found = []
    for index, kind in sites[: LIMITS.mutant_tries_per_program * k]:
        try:
            src = mutate(code, index, kind)
        except Exception:
            continue
        if src in seen:
            continue
        seen.add(src)
        res = run_tests(src, setup, tests)
        if all(res[1:]):
            continue  # not a fault the hidden tests can see
        found.append({"src": src, "kind": kind, "passes_example": res[0],
                      "hidden_failed": sum(1 for r in res[1:] if not r)})
        if sum(1 for f in found if f["passes_example"]) >= k:
            break
    # The insidious ones first: a Dunning-Kruger agent checked the example.
    found.sort(key=lambda f: not f["passes_example"])
    out["mutants"] = found[:k]
    out["ok"] = True
    return out


if __name__ == "__main__":
    request = json.load(sys.stdin)
    LIMITS = Limits(request["limits"])
    try:
        result = main(request)
    except _PastDeadline:
        result = {"ok": False, "rewrites": [], "mutants": [],
                  "why": "preparation ran past its wall-clock limit of %d ms" % LIMITS.wall_ms}
    sys.stdout.write(json.dumps(result))
