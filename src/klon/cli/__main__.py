"""`python -m klon.cli`: the same as the `klon` command."""
import sys

from klon.cli.main import main

sys.exit(main())
