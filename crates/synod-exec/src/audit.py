"""synod audit: what a candidate program may do, judged twice (issue 11).

Loaded by the harness before any candidate code, as its own module. Two layers, each able to
catch a program without the other:

- `static_violations(sources, capabilities)` reads each module's source with `ast` and never
  runs it. It is an allow-list: imports only of the modules in `PURE_IMPORTS` (plus
  `FILES_IMPORTS` with the `files` capability); no `exec`, `eval`, `compile`, `__import__`,
  `breakpoint` or `input`; no `open` without `files`; no attribute in `FORBIDDEN_ATTRIBUTES`
  (frame, code and subclass walks: `__subclasses__`, `__globals__`, `f_back`, ...); no
  `getattr`/`setattr`/`delattr` with a computed name; no `__builtins__`. It judges code that
  never runs under the harness too (an `if __name__ == "__main__":` block, a branch that
  senses the sandbox), and it answers the limit the harness docstring states: a program that
  could forge its results has to reach for frames or the garbage collector, which this rejects.
- `install(report, capabilities, allowed_dirs)` adds an audit hook (PEP 578) before the
  candidate is imported. A forbidden event is reported at once through `report` (the harness
  writes it to the result stream, out of the candidate's reach once written) and then refused
  with PermissionError, so a candidate that swallows the error and returns the right values is
  still caught. Audit hooks cannot be removed, and the hook holds its own references to what it
  calls, so a candidate that rebinds `os.write` or `json.dumps` does not silence it.

Capabilities: the default set is empty, pure computation. `files` grants reading and writing
files under the run's working directory. Nothing else can be granted: no network, no processes,
no signals, no native code.

Standard library only; Python 3.8 and newer.
"""

import ast
import io
import os
import re
import sys
import tokenize

# Modules a pure program may import (standard library only, no file, process, network,
# introspection or native-code access).
PURE_IMPORTS = frozenset("""
__future__ abc array bisect calendar cmath collections collections.abc colorsys contextlib
copy dataclasses datetime decimal difflib enum fractions functools graphlib hashlib heapq hmac
itertools json keyword math numbers operator pprint queue random re reprlib secrets statistics
string struct sys textwrap threading time typing unicodedata zlib base64 binascii
""".split())

# Modules the `files` capability adds.
FILES_IMPORTS = frozenset("os os.path pathlib csv io glob fnmatch shutil tempfile".split())

# Modules a program may import inside its `if __name__ == "__main__":` block only: the test
# runners models end a module with (`doctest.testmod()`), which never run when it is imported.
MAIN_IMPORTS = frozenset("doctest unittest".split())

# Builtins a program may not call (or name) in any capability set.
FORBIDDEN_CALLS = frozenset("exec eval compile __import__ breakpoint input".split())

# Attributes that reach frames, code objects, globals or the class graph.
FORBIDDEN_ATTRIBUTES = frozenset("""
__subclasses__ __globals__ __builtins__ __code__ __closure__ __loader__ __spec__ __reduce__
__reduce_ex__ __getattribute__ __import__ f_back f_globals f_locals f_builtins f_code gi_frame
gi_code cr_frame cr_code ag_frame tb_frame tb_next _getframe _current_frames
""".split())

# Attributes of `sys` that reach other modules, the interpreter's hooks or the input.
SYS_ATTRIBUTES = frozenset("""
modules settrace setprofile addaudithook audit stdin meta_path path_hooks path_importer_cache
""".split())

# Calls whose second argument names an attribute: a computed name hides what is reached.
NAMED_ATTRIBUTE_CALLS = frozenset("getattr setattr delattr hasattr".split())

# Text in a program that addresses the agents or synod rather than the program's reader: a
# program is code, and a delivered one is shown to agents again (implementers, PL-22), so text
# that tries to steer them is an attack even when the code is right.
INJECTION = re.compile(
    r"ignore\s+(all\s+|any\s+)?(the\s+)?(previous|prior|above|earlier|preceding)\s+"
    r"(instructions?|messages?|prompts?|rules?)"
    r"|disregard\s+(all\s+|the\s+)?(previous|prior|above|earlier)\b"
    r"|\b(you\s+are|you're)\s+(now\s+)?(an?\s+)?(ai|assistant|language\s+model|llm|"
    r"reviewer|judge|grader)\b"
    r"|\bsystem\s+prompt\b|\bas\s+an\s+ai\b|\bas\s+a\s+language\s+model\b"
    r"|\b(synod|the\s+checker|the\s+grader|the\s+judge|the\s+reviewer)\b"
    r"[^.\n]{0,40}\b(must|should|shall)\s+(accept|approve|pass|report|mark|vote|ignore)"
    r"|faults?\s*:\s*none|<\|im_start\|>|\[/?INST\]|</?(system|assistant)>",
    re.IGNORECASE,
)

# Longest detail of one violation, and most violations reported per program.
DETAIL_MAX = 200
VIOLATIONS_MAX = 16


def _violation(layer, module, line, operation, detail):
    return {
        "layer": layer,
        "module": module,
        "line": line,
        "operation": operation,
        "detail": detail[:DETAIL_MAX],
    }


def _allowed_import(name, capabilities):
    """`collections.abc` is allowed as `collections` is; `os.path` only where `os` is."""
    allowed = PURE_IMPORTS | (FILES_IMPORTS if "files" in capabilities else frozenset())
    return name in allowed or name.split(".")[0] in allowed


def encode(value, _isinstance=isinstance, _str=str, _int=int, _bool=bool, _dict=dict,
           _list=list, _ord=ord, _hex=hex, _len=len):
    """JSON text of dicts, lists, strings and ints, with nothing the candidate can rebind
    (it may have replaced json.dumps or a builtin by the time the hook reports)."""
    if _isinstance(value, _bool):
        return "true" if value else "false"
    if _isinstance(value, _int):
        return _str(_int(value))
    if _isinstance(value, _str):
        out = []
        for ch in value:
            code = _ord(ch)
            if ch.isalnum() and code < 128 or ch in " ._-/:()=,'+[]<>":
                out.append(ch)
            elif code < 0x10000:
                out.append("\\u" + _hex(code)[2:].rjust(4, "0"))
            else:
                code -= 0x10000
                out.append("\\u" + _hex(0xD800 + (code >> 10))[2:].rjust(4, "0"))
                out.append("\\u" + _hex(0xDC00 + (code & 0x3FF))[2:].rjust(4, "0"))
        return '"' + "".join(out) + '"'
    if _isinstance(value, _dict):
        return "{" + ", ".join(encode(_str(k)) + ": " + encode(v) for k, v in value.items()) + "}"
    if _isinstance(value, _list):
        return "[" + ", ".join(encode(v) for v in value) + "]"
    return "null"


class _Checker(ast.NodeVisitor):
    def __init__(self, module, capabilities, program_modules):
        self.module = module
        self.capabilities = capabilities
        self.program_modules = program_modules
        self.found = []
        # Names bound to imported modules: rebinding their attributes changes them for
        # everyone (the harness included).
        self.module_names = set()
        # Names the program binds itself (parameters, assignments): the builtin is shadowed.
        self.shadowed = set()
        # Inside `if __name__ == "__main__":`.
        self.in_main = False

    def collect_bindings(self, tree):
        for node in ast.walk(tree):
            if isinstance(node, ast.arg):
                self.shadowed.add(node.arg)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self.shadowed.add(node.id)
        # Only builtins that can be shadowed this way; `__import__` and friends never.
        self.shadowed &= (FORBIDDEN_CALLS - {"__import__"}) | {"open"}

    def add(self, node, operation, detail):
        if len(self.found) < VIOLATIONS_MAX:
            self.found.append(
                _violation("static", self.module, getattr(node, "lineno", 0), operation, detail)
            )

    def check_import(self, node, name):
        top = name.split(".")[0]
        if top in self.program_modules:
            return
        if self.in_main and top in MAIN_IMPORTS:
            return
        if not _allowed_import(name, self.capabilities):
            self.add(node, "import " + name, "imports " + name
                     + (" (it needs the files capability)" if name in FILES_IMPORTS
                        or top in FILES_IMPORTS else ", which is not on the allow-list"))

    def visit_If(self, node):
        t = node.test
        is_main = (
            isinstance(t, ast.Compare) and isinstance(t.left, ast.Name)
            and t.left.id == "__name__" and len(t.comparators) == 1
            and isinstance(t.comparators[0], ast.Constant)
            and t.comparators[0].value == "__main__"
        )
        if not is_main or self.in_main:
            self.generic_visit(node)
            return
        self.visit(node.test)
        self.in_main = True
        for child in node.body:
            self.visit(child)
        self.in_main = False
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node):
        for alias in node.names:
            self.check_import(node, alias.name)
            self.module_names.add(alias.asname or alias.name.split(".")[0])
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        if node.level == 0 and node.module:
            self.check_import(node, node.module)
            for alias in node.names:
                if alias.name in FORBIDDEN_ATTRIBUTES:
                    self.add(node, "from " + node.module + " import " + alias.name,
                             "imports " + alias.name)
        self.generic_visit(node)

    def visit_Name(self, node):
        if node.id in self.shadowed:
            pass  # a parameter or variable of the program's own (`def f(input, k)`)
        elif node.id in FORBIDDEN_CALLS:
            self.add(node, node.id, "uses " + node.id)
        elif node.id == "open" and "files" not in self.capabilities:
            self.add(node, "open", "uses open (it needs the files capability)")
        elif node.id in ("__builtins__", "__import__", "__loader__", "__spec__"):
            self.add(node, node.id, "uses " + node.id)
        self.generic_visit(node)

    def visit_Attribute(self, node):
        if node.attr in FORBIDDEN_ATTRIBUTES:
            self.add(node, "." + node.attr, "reaches ." + node.attr)
        elif node.attr in SYS_ATTRIBUTES and isinstance(node.value, ast.Name) \
                and node.value.id == "sys" \
                and not (self.in_main and node.attr == "modules"):
            # (`doctest.testmod(sys.modules[__name__])` is how a __main__ block runs doctests.)
            self.add(node, "sys." + node.attr, "reaches sys." + node.attr)
        if isinstance(node.ctx, (ast.Store, ast.Del)) and isinstance(node.value, ast.Name) \
                and node.value.id in self.module_names:
            self.add(node, node.value.id + "." + node.attr,
                     "rebinds " + node.value.id + "." + node.attr)
        self.generic_visit(node)

    def visit_Call(self, node):
        f = node.func
        if isinstance(f, ast.Name) and f.id in NAMED_ATTRIBUTE_CALLS and len(node.args) >= 2:
            name = node.args[1]
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                self.add(node, f.id, f.id + " with a computed attribute name")
            elif name.value in FORBIDDEN_ATTRIBUTES or name.value in FORBIDDEN_CALLS:
                self.add(node, f.id, f.id + " of " + name.value)
        self.generic_visit(node)

    def visit_Constant(self, node):
        # A dunder or frame attribute spelled as a string (vars(x)["__globals__"], ...).
        if isinstance(node.value, str) and node.value in FORBIDDEN_ATTRIBUTES \
                and node.value.startswith("_"):
            self.add(node, repr(node.value), "names " + node.value + " in a string")
        if isinstance(node.value, str):
            self.check_text(node, node.value)

    def check_text(self, node, text):
        m = INJECTION.search(text)
        if m:
            self.add(node, "prompt injection",
                     "addresses the agents or synod: " + repr(m.group(0)[:60]))


def _comments(text):
    """(line, comment text) of every comment that tokenizes."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT:
                out.append((tok.start[0], tok.string))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass
    return out


class _Line:
    def __init__(self, lineno):
        self.lineno = lineno


def forged_output_violation():
    """The violation of a program that prints lines shaped like the result protocol."""
    return _violation("runtime", "", 0, "output",
                      "prints lines shaped like synod's result protocol")


def static_violations(sources, capabilities):
    """Violations in the program's sources ({module: text}), judged without running them."""
    found = []
    program_modules = set(sources)
    for module, text in sources.items():
        try:
            tree = ast.parse(text, filename=module + ".py")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            # A program that does not parse does not load either: the load error says why.
            continue
        checker = _Checker(module, capabilities, program_modules)
        try:
            checker.collect_bindings(tree)
            checker.visit(tree)
        except RecursionError:
            checker.add(tree, "nesting", "nests too deeply to be judged")
        for line, comment in _comments(text):
            checker.check_text(_Line(line), comment)
        found.extend(checker.found)
        if len(found) >= VIOLATIONS_MAX:
            return found[:VIOLATIONS_MAX]
    return found


# Audit events refused in every capability set, by prefix or exact name.
_PROCESS_EVENTS = (
    "os.system", "os.exec", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn",
    "subprocess.Popen", "os.startfile", "pty.spawn",
)
_NATIVE_IMPORTS = frozenset(("_posixsubprocess", "ctypes", "_ctypes", "mmap", "_xxsubinterpreters",
                             "_testcapi", "_testinternalcapi"))
_ALWAYS_REFUSED = frozenset((
    "os.kill", "os.killpg", "signal.pthread_kill", "sys.addaudithook", "builtins.input",
    "builtins.breakpoint", "sys.settrace", "sys.setprofile", "gc.get_objects",
    "gc.get_referrers", "gc.get_referents", "resource.setrlimit", "resource.prlimit",
    "os.putenv", "os.unsetenv", "os.chdir", "os.fchdir", "pickle.find_class",
    "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "ctypes.addressof", "sys._current_frames",
    "socket.__new__", "socket.bind", "socket.connect", "socket.getaddrinfo",
    "socket.gethostbyname", "socket.sendto", "urllib.Request", "http.client.connect",
    "webbrowser.open", "tempfile.mkstemp", "tempfile.mkdtemp", "os.mkfifo", "os.mknod",
))
# File-system changes: refused without `files`, and outside the working directory with it.
_PATH_EVENTS = frozenset((
    "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link",
    "os.symlink", "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile",
    "shutil.copytree", "os.chflags", "os.lchflags", "os.setxattr", "os.removexattr",
))
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def install(report, capabilities, read_dirs, work_dir):
    """Adds the audit hook. `report(violation)` must write the violation out at once.

    `read_dirs`: where a pure program may read (the interpreter's trees and the program's own
    modules). With `files`, reading and writing under `work_dir` are allowed too.
    """
    files = "files" in capabilities
    realpath = os.path.realpath
    join = os.path.join
    sep = os.sep
    startswith = str.startswith
    isinstance_ = isinstance
    str_ = str
    bytes_ = bytes
    int_ = int
    fsdecode = os.fsdecode
    getcwd = os.getcwd
    any_ = any
    tuple_ = tuple
    permission_error = PermissionError
    base_exception = BaseException
    violation = _violation
    always_refused = _ALWAYS_REFUSED
    process_events = _PROCESS_EVENTS
    native_imports = _NATIVE_IMPORTS
    path_events = _PATH_EVENTS
    write_flags = _WRITE_FLAGS
    read_roots = tuple(realpath(d) for d in read_dirs if d)
    work_root = realpath(work_dir)
    state = {"inside": False}

    def under(path, roots):
        try:
            if isinstance_(path, int_):
                return True  # an already open descriptor: judged when it was opened
            if isinstance_(path, bytes_):
                path = fsdecode(path)
            if not isinstance_(path, str_):
                return False
            if not startswith(path, sep):
                path = join(getcwd(), path)
            full = realpath(path)
        except base_exception:  # noqa: B036 - an unreadable path is not allowed
            return False
        for root in roots:
            if full == root or startswith(full, root + sep):
                return True
        return False

    def refuse(event, detail):
        report(violation("runtime", "", 0, event, detail))
        raise permission_error("synod: " + event + " is not allowed (" + detail + ")")

    def hook(event, args):
        if state["inside"]:
            return
        state["inside"] = True
        try:
            verdict = judge(event, args)
        finally:
            state["inside"] = False
        if verdict is not None:
            refuse(event, verdict)

    def judge(event, args):
        if event in always_refused or startswith(event, "socket."):
            return "the capability set grants no " + event
        for prefix in process_events:
            if startswith(event, prefix):
                return "starts a process"
        if event == "import" and args and args[0] in native_imports:
            return "imports " + str_(args[0])
        if event == "open" and args:
            path, mode, flags = (tuple_(args) + (None, None, None))[:3]
            writing = False
            if isinstance_(mode, str_) and any_(c in mode for c in "wax+"):
                writing = True
            if isinstance_(flags, int_) and flags & write_flags:
                writing = True
            if files and under(path, (work_root,)):
                return None
            if writing:
                return "writes " + str_(path)[:120]
            if not under(path, read_roots):
                return "reads " + str_(path)[:120]
            return None
        if event in path_events:
            path = args[0] if args else None
            if files and under(path, (work_root,)):
                return None
            return "changes the file system at " + str_(path)[:120]
        return None

    sys.addaudithook(hook)
