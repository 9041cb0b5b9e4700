"""``python -m analyzer`` is the same as the ``cnnstat`` command."""

import sys

from analyzer.commands.cli import main

sys.exit(main())
