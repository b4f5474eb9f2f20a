"""nbgrader as a learner's server uses it in the workshop: the course's assignments come from the exchange."""

import os

from part_utils.settings import cell_timeout_s

c = get_config()  # noqa: F821 (defined by traitlets when it loads this file)
c.CourseDirectory.course_id = os.environ["LATENT_GRADIENTS_COURSE_ID"]
c.Exchange.root = os.path.join(os.environ["LATENT_GRADIENTS_WORKSHOP_DIR"], "exchange")
# A submission folder writable by its learner only (workshop/exchange.py).
c.ExchangeFactory.submit = "workshop.exchange.PrivateSubmit"
# Validate runs the whole notebook in a fresh kernel: each cell gets the grader's per-cell limit
# (LATENT_GRADIENTS_CELL_TIMEOUT, passed by jupyterhub_config.py), not nbgrader's default 30 s, which a busy server exceeds.
c.Execute.timeout = cell_timeout_s()
