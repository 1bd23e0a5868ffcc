"""`python -m tcposcrouter` works like the `tcposcrouter` command."""

import sys

from .cli import main

sys.exit(main())
