"""The dashboard's static files and the security headers of everything it serves.

Only files that exist in `static/` when the service starts are served, by exact name (no
path from the request ever reaches the file system). Nothing is fetched from another origin:
clinics may be offline, and the Content-Security-Policy forbids it anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

from fastapi import Response

from store.errors import ResourceNotFound

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"

MEDIA_TYPES: Final[Mapping[str, str]] = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

# Same origin only: no CDN, no inline script or style, no framing, no form posting elsewhere.
CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _catalog() -> dict[str, Path]:
    return {
        path.name: path
        for path in STATIC_DIR.iterdir()
        if path.is_file() and path.suffix in MEDIA_TYPES
    }


STATIC_FILES: Final = _catalog()


def static_response(name: str) -> Response:
    """One static file; `ResourceNotFound` for any name that is not in the catalog."""
    path = STATIC_FILES.get(name)
    if path is None:
        raise ResourceNotFound(f"no dashboard asset named {name!r}")
    # Revalidate every time: the files are small and a clinic must see a fix at once.
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    return Response(path.read_bytes(), media_type=MEDIA_TYPES[path.suffix], headers=headers)
