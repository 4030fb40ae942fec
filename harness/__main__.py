"""`python -m harness ...` is `harness ...`."""
import sys

from harness.commands.entry import main

sys.exit(main())
