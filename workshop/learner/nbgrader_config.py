"""nbgrader as a learner's server uses it in the workshop: the course's assignments come from the exchange."""

from part_utils.settings import cell_timeout_s
from workshop import settings

c = get_config()  # noqa: F821 (defined by traitlets when it loads this file)
c.CourseDirectory.course_id = settings.course_id()
c.Exchange.root = str(settings.exchange())
# A submission folder writable by its learner only (workshop/exchange.py).
c.ExchangeFactory.submit = "workshop.exchange.PrivateSubmit"
# Validate runs the whole notebook in a fresh kernel: each cell gets the grader's per-cell limit
# (LATENT_GRADIENTS_CELL_TIMEOUT, passed by jupyterhub_config.py), not nbgrader's default 30 s, which a busy server exceeds.
c.Execute.timeout = cell_timeout_s()
