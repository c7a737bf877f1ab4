"""``python -m crosscheck``: the same as the ``crosscheck`` command."""

from crosscheck.cli import console_main

console_main()
