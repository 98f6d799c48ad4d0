//! Module names a program may not use: the files synod writes next to a program's modules,
//! synod's own modules, and the names of Python's standard library.
//!
//! A component is written as `program/<name>.py`, beside the generated contract tests, and is
//! imported by the harness next to synod's own modules. A component named `test_contract` was
//! overwritten by the tests (issue 11: "built", a program that does not import, `verify`
//! failing); one named `json` shadows the standard module for every other import of it. Such a
//! name is refused when a reading is validated, as the agent's fault, with the reason.

use crate::pipeline::REFERENCE_MODULE;

/// The generated contract tests' module: synod-runtime writes `program/test_contract.py`
/// (`output::TESTS_FILE`, which a test there keeps equal to this).
pub const TESTS_MODULE: &str = "test_contract";

/// synod's own modules by name: the tests beside the program, the harness that loads it
/// (`harness.py`, synod-exec) and the reference a reading is checked as. Every name that starts
/// with `synod_` is reserved as well (the audit layer is `synod_audit`, and later modules of
/// synod's will be named so).
const SYNOD_MODULES: &[&str] = &[TESTS_MODULE, "harness", REFERENCE_MODULE, "synod"];

/// The prefix of synod's own module names.
const SYNOD_PREFIX: &str = "synod_";

/// Why `name` cannot be a program's module, if it cannot. Names synod writes are compared
/// ignoring case (`Test_Contract.py` and `test_contract.py` are one file on a case-insensitive
/// file system); standard-library names exactly, as Python imports them.
pub fn module_name_problem(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if lower == TESTS_MODULE {
        return Some(format!(
            "{name:?} is the module of the contract tests synod writes beside the program \
             ({TESTS_MODULE}.py)"
        ));
    }
    if SYNOD_MODULES.contains(&lower.as_str()) || lower.starts_with(SYNOD_PREFIX) {
        return Some(format!(
            "{name:?} is reserved for synod's own modules (harness, {REFERENCE_MODULE}, \
             {SYNOD_PREFIX}*)"
        ));
    }
    if name.len() > 4 && name.starts_with("__") && name.ends_with("__") {
        return Some(format!(
            "{name:?} is a name Python gives a meaning of its own (like __main__ or __init__)"
        ));
    }
    if PYTHON_STDLIB_MODULES.binary_search(&name).is_ok() {
        return Some(format!(
            "{name:?} would shadow the Python standard-library module of that name"
        ));
    }
    None
}

/// `sys.stdlib_module_names` of Python 3.11, sorted: fixed here, not asked of the python3 that
/// happens to run, so a reading is valid or not whatever machine checks it.
#[rustfmt::skip]
pub const PYTHON_STDLIB_MODULES: &[&str] = &[
    "__future__", "_abc", "_aix_support", "_ast", "_asyncio", "_bisect", "_blake2",
    "_bootsubprocess", "_bz2", "_codecs", "_codecs_cn", "_codecs_hk", "_codecs_iso2022",
    "_codecs_jp", "_codecs_kr", "_codecs_tw", "_collections", "_collections_abc", "_compat_pickle",
    "_compression", "_contextvars", "_crypt", "_csv", "_ctypes", "_curses", "_curses_panel",
    "_datetime", "_dbm", "_decimal", "_elementtree", "_frozen_importlib",
    "_frozen_importlib_external", "_functools", "_gdbm", "_hashlib", "_heapq", "_imp", "_io",
    "_json", "_locale", "_lsprof", "_lzma", "_markupbase", "_md5", "_msi", "_multibytecodec",
    "_multiprocessing", "_opcode", "_operator", "_osx_support", "_overlapped", "_pickle",
    "_posixshmem", "_posixsubprocess", "_py_abc", "_pydecimal", "_pyio", "_queue", "_random",
    "_scproxy", "_sha1", "_sha256", "_sha3", "_sha512", "_signal", "_sitebuiltins", "_socket",
    "_sqlite3", "_sre", "_ssl", "_stat", "_statistics", "_string", "_strptime", "_struct",
    "_symtable", "_thread", "_threading_local", "_tkinter", "_tokenize", "_tracemalloc", "_typing",
    "_uuid", "_warnings", "_weakref", "_weakrefset", "_winapi", "_zoneinfo", "abc", "aifc",
    "antigravity", "argparse", "array", "ast", "asynchat", "asyncio", "asyncore", "atexit",
    "audioop", "base64", "bdb", "binascii", "bisect", "builtins", "bz2", "cProfile", "calendar",
    "cgi", "cgitb", "chunk", "cmath", "cmd", "code", "codecs", "codeop", "collections", "colorsys",
    "compileall", "concurrent", "configparser", "contextlib", "contextvars", "copy", "copyreg",
    "crypt", "csv", "ctypes", "curses", "dataclasses", "datetime", "dbm", "decimal", "difflib",
    "dis", "distutils", "doctest", "email", "encodings", "ensurepip", "enum", "errno",
    "faulthandler", "fcntl", "filecmp", "fileinput", "fnmatch", "fractions", "ftplib", "functools",
    "gc", "genericpath", "getopt", "getpass", "gettext", "glob", "graphlib", "grp", "gzip",
    "hashlib", "heapq", "hmac", "html", "http", "idlelib", "imaplib", "imghdr", "imp", "importlib",
    "inspect", "io", "ipaddress", "itertools", "json", "keyword", "lib2to3", "linecache", "locale",
    "logging", "lzma", "mailbox", "mailcap", "marshal", "math", "mimetypes", "mmap", "modulefinder",
    "msilib", "msvcrt", "multiprocessing", "netrc", "nis", "nntplib", "nt", "ntpath", "nturl2path",
    "numbers", "opcode", "operator", "optparse", "os", "ossaudiodev", "pathlib", "pdb", "pickle",
    "pickletools", "pipes", "pkgutil", "platform", "plistlib", "poplib", "posix", "posixpath",
    "pprint", "profile", "pstats", "pty", "pwd", "py_compile", "pyclbr", "pydoc", "pydoc_data",
    "pyexpat", "queue", "quopri", "random", "re", "readline", "reprlib", "resource", "rlcompleter",
    "runpy", "sched", "secrets", "select", "selectors", "shelve", "shlex", "shutil", "signal",
    "site", "smtpd", "smtplib", "sndhdr", "socket", "socketserver", "spwd", "sqlite3",
    "sre_compile", "sre_constants", "sre_parse", "ssl", "stat", "statistics", "string",
    "stringprep", "struct", "subprocess", "sunau", "symtable", "sys", "sysconfig", "syslog",
    "tabnanny", "tarfile", "telnetlib", "tempfile", "termios", "textwrap", "this", "threading",
    "time", "timeit", "tkinter", "token", "tokenize", "tomllib", "trace", "traceback",
    "tracemalloc", "tty", "turtle", "turtledemo", "types", "typing", "unicodedata", "unittest",
    "urllib", "uu", "uuid", "venv", "warnings", "wave", "weakref", "webbrowser", "winreg",
    "winsound", "wsgiref", "xdrlib", "xml", "xmlrpc", "zipapp", "zipfile", "zipimport", "zlib",
    "zoneinfo"
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_library_list_is_sorted_and_complete() {
        assert!(PYTHON_STDLIB_MODULES.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(PYTHON_STDLIB_MODULES.len(), 305, "Python 3.11's list");
        for m in [
            "json",
            "os",
            "sys",
            "re",
            "math",
            "string",
            "typing",
            "_abc",
            "__future__",
        ] {
            assert!(module_name_problem(m).is_some(), "{m}");
        }
    }

    #[test]
    fn reserved_names_say_why_and_ordinary_names_pass() {
        let why = |n: &str| module_name_problem(n).unwrap_or_default();
        assert!(why("test_contract").contains("contract tests"));
        assert!(why("Test_Contract").contains("contract tests"));
        assert!(why("synod_reference").contains("synod's own"));
        assert!(why("synod_audit").contains("synod's own"));
        assert!(why("harness").contains("synod's own"));
        assert!(why("__init__").contains("meaning of its own"));
        assert!(why("json").contains("standard-library"));
        for ok in [
            "solution", "rpn", "rpn_eval", "Json", "synodic", "tests", "contract",
        ] {
            assert_eq!(module_name_problem(ok), None, "{ok}");
        }
    }
}
