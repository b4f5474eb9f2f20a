"""nbgrader for the instructor in the workshop: the course's own configuration (../../nbgrader/nbgrader_config.py,
so `nbgrader autograde` and formgrader's Autograde button grade through the course's pipeline), with the
course directory in the instructor's private home and the exchange shared with the learners."""

import os
from pathlib import Path

from workshop import settings
from workshop.prepare import KERNEL_LAUNCHER

# ruff: noqa: F821 (`c`, `get_config` and `load_subconfig` are provided by traitlets when it loads this file)
c = get_config()
load_subconfig(str(Path(__file__).resolve().parents[2] / "nbgrader" / "nbgrader_config.py"))

course = Path(os.environ["GRADING_COURSE_DIR"])
c.CourseDirectory.root = str(course)
c.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}?timeout=120"
c.Exchange.root = str(settings.exchange())
# Collect rejects a submission folder that is not wholly the learner's it names (workshop/exchange.py).
c.ExchangeFactory.collect = "workshop.exchange.OwnedSubmissionsCollect"
# The course's pipeline points at its own course directory: here, the instructor's (the preprocessors read the
# release and the hidden tests' secret through CourseDirectory.root; the reports, and what the sandbox hides).
# Grading kernels see neither the course nor the exchange (every learner's submissions and feedback), nor what
# the course's configuration hides.
c.SandboxProvisioner.hidden_paths = [*c.SandboxProvisioner.hidden_paths, str(course), c.Exchange.root]
# They start through the root launcher that make workshop lets this account run (workshop/prepare.py): as the
# grading account, in cgroups. Without it, the server's log says which limits do not hold.
c.SandboxProvisioner.root_launcher = str(KERNEL_LAUNCHER)
