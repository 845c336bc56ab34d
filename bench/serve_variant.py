"""``calsync serve`` with one List Events variant of ``variants.py`` monkeypatched in.

Usage: python bench/serve_variant.py VARIANT serve --no-worker --host 127.0.0.1 --port N
(the bench database must already have that variant's schema: see ``variants.apply_schema``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import variants

from calsync.cli import app

if __name__ == "__main__":
    variants.install(sys.argv[1])
    sys.argv = ["calsync", *sys.argv[2:]]
    app()
