"""`python -m tcposcrouter` works like the `tcposcrouter` command."""

import sys

from .cli.router import main

sys.exit(main())
