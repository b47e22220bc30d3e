"""``python -m recsdk.cli``: the same as the ``recsdk`` command."""

from recsdk.cli import main

main()
