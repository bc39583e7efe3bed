"""``logrotate/<app>``: rotation by logrotate, for ``LOG_ROTATION=external``."""

from __future__ import annotations

from alkana_logging.ops.configs.options import Artifact, RenderOptions, _header


def logrotate(options: RenderOptions) -> list[Artifact]:
    """``logrotate/<app>``: rotation by logrotate for ``LOG_ROTATION=external``."""
    text = f"""{_header("logrotate")}#
# For LOG_ROTATION=external: logrotate renames the file and creates a new one; the library
# notices the new inode and reopens by itself. Hence no copytruncate (it loses the lines
# written between the copy and the truncation) and no postrotate reload (a signal would stop
# a uvicorn worker). Install as /etc/logrotate.d/{options.app}; test with `logrotate -d`.
{options.log_glob} {{
    # Rotate as the files' owner, never as root in a directory the application can write.
    su {options.user} {options.group}
    daily
    # Also rotate within the day once a file passes 10 MB (needs logrotate run hourly).
    maxsize 10M
    rotate 14
    missingok
    notifempty
    create 0640 {options.user} {options.group}
    # app.log-20261126-1764170000: the epoch seconds keep two rotations of one day apart,
    # and the names sort by age. Rotated names fall outside the shippers' *.log glob.
    dateext
    dateformat -%Y%m%d-%s
    compress
    # The newest rotated file stays uncompressed until the next rotation: a process that
    # has not reopened yet may still append to it.
    delaycompress
}}
"""
    return [Artifact(f"logrotate/{options.app}", text)]
