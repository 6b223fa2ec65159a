"""``python -m receiver.cli``: the ``umstrack`` command line."""

from receiver.cli import main

main(prog_name="umstrack")
