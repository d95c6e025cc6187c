"""Jinja2 templates of the dashboard and the filters that format numbers the way every page shows them.

Pages are rendered with autoescape on (every value a user or key holder can influence, such as an
observation source or a key name, is text, never markup) and carry a Content-Security-Policy that admits
scripts, styles, images and fetches from this server only and no inline script or style, so even a
missed escape could not run code."""

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.responses import Response

WEB_DIR = Path(__file__).parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
MISSING = "—"


def number(value: float | None) -> str:
    """Proxy values span 1e-3 to 1e36: four significant digits, in scientific notation outside [1e-3, 1e6)."""
    if value is None or not math.isfinite(value):
        return MISSING
    if value != 0 and not 1e-3 <= abs(value) < 1e6:
        return f"{value:.3e}"
    return f"{value:.4g}"


def percent(share: float | None) -> str:
    """A share in [0, 1] as a whole percentage."""
    return MISSING if share is None else f"{100 * share:.0f}%"


def accuracy(value: float | None) -> str:
    """An accuracy in percent, as the benchmarks print them."""
    return MISSING if value is None else f"{value:.2f}%"


def duration(seconds: float | None) -> str:
    """An ETA as a person reads it: `42 s`, `3 min 12 s`, `2 h 5 min`."""
    if seconds is None:
        return MISSING
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def rate(per_second: float | None) -> str:
    """Items per second, or per minute below one a second (a busy CPU scores a cell every few seconds)."""
    if per_second is None:
        return MISSING
    if per_second >= 1:
        return f"{per_second:.1f}/s"
    return f"{60 * per_second:.1f}/min"


def timestamp(moment: datetime | None) -> str:
    """UTC to the second; the pages' column headers say UTC."""
    return MISSING if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def breakable(text: str, separator: str = "_") -> Markup:
    """Text that may wrap after each `separator` when its column is narrow: a proxy name in a header
    (`az_<wbr>expressivity`), an NB201 string between its node groups (`+`)."""
    return Markup(f"{separator}<wbr>").join(text.split(separator))


def _environment() -> Jinja2Templates:
    templates = Jinja2Templates(directory=TEMPLATES_DIR)
    templates.env.autoescape = True
    templates.env.trim_blocks = True
    templates.env.lstrip_blocks = True
    templates.env.filters.update(
        number=number,
        percent=percent,
        accuracy=accuracy,
        duration=duration,
        rate=rate,
        timestamp=timestamp,
        breakable=breakable,
    )
    return templates


templates = _environment()


def render(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> Response:
    """A page with the dashboard's security headers."""
    return templates.TemplateResponse(request, template, context, status_code=status_code, headers=PAGE_HEADERS)
