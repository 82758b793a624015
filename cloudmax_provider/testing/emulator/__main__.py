"""``python -m cloudmax_provider.testing.emulator``: the emulator's command line (:mod:`.cli`)."""

import sys

from cloudmax_provider.testing.emulator.cli import main

sys.exit(main())
