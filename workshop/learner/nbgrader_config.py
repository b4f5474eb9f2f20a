"""nbgrader as a learner's server uses it in the workshop: the course's assignments come from the exchange."""

import os

c = get_config()  # noqa: F821 (defined by traitlets when it loads this file)
c.CourseDirectory.course_id = os.environ["LATENT_GRADIENTS_COURSE_ID"]
c.Exchange.root = os.path.join(os.environ["LATENT_GRADIENTS_WORKSHOP_DIR"], "exchange")
