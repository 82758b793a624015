"""``python -m cloudmax_provider.probe``: see :mod:`cloudmax_provider.probe.cli`."""

import sys

from cloudmax_provider.probe.cli import main

sys.exit(main())
