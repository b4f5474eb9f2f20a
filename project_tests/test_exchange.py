"""The workshop's exchange (workshop/exchange.py): collect takes only what is wholly the named learner's.

Folders of the inbound are made here with the owners and modes a forger would leave; the workshop's browser
test (test_workshop.py) forges a submission through a learner's own account and collects it from formgrader.
"""

from __future__ import annotations

import os
import pwd

import pytest

from workshop.exchange import OwnedSubmissionsCollect, foreign_content

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to give folders to other accounts")
OTHER = "nobody"


def _folder(parent, name: str, owner: str, mode: int = 0o755):
    folder = parent / name
    folder.mkdir()
    (folder / "latent_gradients.ipynb").write_text("{}")
    account = pwd.getpwnam(owner)
    for path in (folder, folder / "latent_gradients.ipynb"):
        os.chown(path, account.pw_uid, account.pw_gid)
    os.chmod(folder, mode)
    return folder


def test_a_folder_is_accepted_only_when_wholly_its_learners(tmp_path) -> None:
    assert foreign_content(str(_folder(tmp_path, "own", "root")), "root") is None
    assert "belongs to nobody" in foreign_content(str(_folder(tmp_path, "forged", OTHER)), "root")
    assert "writable by other accounts" in foreign_content(str(_folder(tmp_path, "open", "root", 0o777)), "root")
    inside = _folder(tmp_path, "replaced", "root")
    os.chown(inside / "latent_gradients.ipynb", pwd.getpwnam(OTHER).pw_uid, -1)
    assert "belongs to nobody" in foreign_content(str(inside), "root")
    linked = _folder(tmp_path, "linked", "root")
    (linked / "elsewhere").symlink_to("/etc")
    assert "symbolic link" in foreign_content(str(linked), "root")
    assert "no account" in foreign_content(str(linked), "no-such-learner")


def test_a_forged_later_submission_does_not_hide_the_genuine_one(tmp_path) -> None:
    """The forger's folder carries a later timestamp; the learner's own one is collected, the forged one is not."""
    genuine = _folder(tmp_path, "root+latent_gradients+2026-01-01 10:00:00.000000 UTC+a", "root")
    forged = _folder(tmp_path, "root+latent_gradients+2099-01-01 10:00:00.000000 UTC+b", OTHER)
    collect = OwnedSubmissionsCollect.__new__(OwnedSubmissionsCollect)
    records = collect._sort_by_timestamp([collect._path_to_record(str(forged)), collect._path_to_record(str(genuine))])
    assert [record["filename"] for record in records] == [genuine.name, forged.name]
    assert records[0]["timestamp"].year == 2026 and records[0]["rejected"] is None and "belongs to nobody" in records[1]["rejected"]
