"""Print the standard-library files the slim python image needs, one path a line.

Run by the host's python (isolated, -I) with the modules to import as arguments: it imports them
(and what Python itself loads at start-up), then prints the source file of every stdlib module
loaded (frozen ones too: their .py is the prefix landmark and gives tracebacks their lines), every
package's __init__.py and every extension module under lib-dynload. Extensions in EXCLUDE stay
out: the modules that load them fall back without them (hashlib uses the built-in _sha256 etc.
without OpenSSL; shutil and tarfile just lose bz2/lzma), and they would pull in large libraries.
"""

import importlib
import os
import sys
import sysconfig

EXCLUDE = {"_hashlib", "_ssl", "_bz2", "_lzma", "readline", "sitecustomize", "apport_python_hook"}

for name in sys.argv[1:]:
    importlib.import_module(name)
"x".encode("idna")

stdlib = sysconfig.get_paths()["stdlib"]
files = {os.path.join(stdlib, "os.py")}
for name, module in list(sys.modules.items()):
    if name.split(".")[0] in EXCLUDE:
        continue
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None) if spec else None
    if origin == "frozen":
        base = os.path.join(stdlib, *name.split("."))
        candidates = [base + ".py", os.path.join(base, "__init__.py")]
        origin = next((c for c in candidates if os.path.exists(c)), None)
    if not origin or not os.path.isabs(origin):
        continue
    origin = os.path.realpath(origin)
    if not origin.startswith(stdlib + os.sep) or "site-packages" in origin or "dist-packages" in origin:
        continue
    files.add(origin)
for path in sorted(files):
    print(path)
