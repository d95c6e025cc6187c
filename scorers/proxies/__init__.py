"""Built-in proxies: every module in this package registers one proxy and is imported here
automatically, so adding a proxy is adding a file."""

import importlib
import pkgutil

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda module: module.name):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
