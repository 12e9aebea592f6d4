"""MkDocs hooks (mkdocs.yml ``hooks``): the docstrings' Sphinx roles as plain code.

The docstrings write ``:class:`lingspace_harness.Task``` (reStructuredText); the generated
reference renders them as Markdown, which leaves the role's name in front of the code span.
"""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj):(?=<code>)")


def on_page_content(html: str, **kwargs: Any) -> str:
    return ROLE.sub("", html)
