"""The command-line entry points: `tcposcrouter` and `tcposcrouter-client`. One line a module:

router.py          tcposcrouter: settings, the event loop, signals, reload
flags.py           its flags, grouped as --help shows them
config.py          the configuration file: keys, pinned groups, problems by line
logs.py            text or JSON lines, journald, levels changed on reload
passwd.py          tcposcrouter passwd
startup_errors.py  a port that cannot be opened, told with the flag that moves it
parser.py          argparse with one-line errors and the nearest flag for a typo
client.py          tcposcrouter-client: send, listen, bridge, record, replay, time
client_flags.py    its commands and flags, each joining flag with its variable
"""
