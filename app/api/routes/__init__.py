"""One module per resource; each exposes `router`. Adding an endpoint family (leaderboard, correlations,
export, …) is one new module here: `include_all` picks it up without edits elsewhere."""

import importlib
import pkgutil

from fastapi import FastAPI


def include_all(app: FastAPI) -> None:
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            app.include_router(importlib.import_module(f"{__name__}.{module.name}").router)
