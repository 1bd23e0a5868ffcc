"""Command-line entry points: `tcposcrouter` (`router`)."""
