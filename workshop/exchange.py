"""nbgrader's exchange for the workshop, where learners share one machine: a submission is its learner's alone.

nbgrader's own exchange files a folder in the inbound under whichever learner it names, with only a warning
when someone else owns it, and leaves every submission folder writable by everyone. Here:

- `PrivateSubmit` (the learners' `nbgrader submit`, workshop/learner/nbgrader_config.py) leaves the
  submission folder writable by its learner only;
- `OwnedSubmissionsCollect` (the instructor's collect, from formgrader or the command line,
  workshop/instructor/nbgrader_config.py) rejects a submission folder that is not entirely the named
  learner's: owned by that account, no symbolic link, nothing in it writable by group or others. A
  rejected folder never hides the learner's genuine submission, whatever its timestamp.
"""

from __future__ import annotations

import os
import pwd
import stat

from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.exchange.default.submit import ExchangeSubmit


def foreign_content(folder: str, username: str) -> str | None:
    """Why `folder` is not entirely `username`'s own submission, or None when it is."""
    try:
        uid = pwd.getpwnam(username).pw_uid
    except KeyError:
        return f"no account is called {username!r}"
    paths = [folder]
    for parent, folders, files in os.walk(folder):
        paths += [os.path.join(parent, name) for name in folders + files]
    for path in paths:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            return f"{path} is a symbolic link"
        if info.st_uid != uid:
            try:
                owner = pwd.getpwuid(info.st_uid).pw_name
            except KeyError:
                owner = f"user id {info.st_uid}"
            return f"{path} belongs to {owner}, not {username}"
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"{path} is writable by other accounts"
    return None


class OwnedSubmissionsCollect(ExchangeCollect):
    def _path_to_record(self, path: str) -> dict:
        record = super()._path_to_record(path)
        record["rejected"] = foreign_content(path, record["username"])
        return record

    def _sort_by_timestamp(self, records: list[dict]) -> list[dict]:
        # A learner's genuine submissions first, newest first; a rejected one is chosen only when nothing else is there.
        return sorted(records, key=lambda record: (record["rejected"] is None, record["timestamp"]), reverse=True)

    def init_src(self) -> None:
        super().init_src()
        for record in self.src_records:
            if record["rejected"]:
                self.log.error("Rejected the submission %s under %s's name: %s.", record["filename"], record["username"], record["rejected"])
        self.src_records = [record for record in self.src_records if not record["rejected"]]


class PrivateSubmit(ExchangeSubmit):
    def copy_files(self) -> None:
        super().copy_files()
        # nbgrader leaves the folder writable by everyone (rwxrwxrwx): only its learner may change it.
        os.chmod(os.path.join(self.inbound_path, self.assignment_filename), 0o755)
