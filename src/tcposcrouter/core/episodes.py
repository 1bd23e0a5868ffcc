"""Error episodes: the repeats of one error on one member's connection are counted, and logged
as one line with their count once the connection has been quiet about it for a while, instead
of one line per packet (a client stuck sending something wrong fills no disk).

Pure code: the caller passes the time.
"""

from __future__ import annotations

import logging

from ..errors import RemoteError
from .session import ErrorEpisode, Session

__all__ = ["ERROR_EPISODE_SECONDS", "end_episodes", "note_error"]

log = logging.getLogger("tcposcrouter.hub")

# An episode of one repeated error on one connection ends after this many quiet seconds; its
# repeats are then logged as one line with their count.
ERROR_EPISODE_SECONDS = 10.0


def note_error(session: Session, error: RemoteError, now: float) -> None:
    """A non-fatal error of a member: its first in an episode is logged, repeats counted."""
    quiet = session.quiet
    if quiet is None:
        quiet = session.quiet = {}
    episode = quiet.get(error.code)
    if episode is None:
        quiet[error.code] = ErrorEpisode(now)
        log.info("error %s: %s: %s", session.describe(), error.code, error.detail)
    else:
        episode.count += 1
        episode.last = now


def end_episodes(session: Session, now: float, quiet_for: float) -> None:
    """Log and forget the episodes of `session` that have been quiet for `quiet_for` seconds."""
    quiet = session.quiet
    assert quiet is not None
    for code, episode in list(quiet.items()):
        if now - episode.last >= quiet_for:
            del quiet[code]
            if episode.count:
                log.info(
                    "error %s: %s %d more times in %.0f s",
                    session.describe(),
                    code,
                    episode.count,
                    episode.last - episode.first,
                )
    if not quiet:
        session.quiet = None
