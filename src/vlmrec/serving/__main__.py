"""`python -m vlmrec.serving`: see `vlmrec.serving.server`."""

from vlmrec.serving.server import main

main()
