"""``python -m mesoinv`` is the ``mesoinv`` command (used by the workflow's rules)."""

from .cli import main

main()
