"""The README's code snippets, for the tests that hold README to what it shows."""
import os
import re

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def readme_snippet(start: str) -> str:
    """The ```python block of README.md whose text starts with ``start`` (a regex)."""
    with open(README) as f:
        match = re.search(r"```python\n(" + start + r".*?)```", f.read(), re.S)
    assert match, f"README.md has no python block starting with {start!r}"
    return match.group(1)


def write_readme_config(start: str, path) -> str:
    """Write the README config snippet starting with ``start`` to ``path``; return the path."""
    path.write_text(readme_snippet(start))
    return str(path)
