"""The instructor's JupyterLab in the workshop (jupyterhub_config.py points JUPYTER_CONFIG_PATH here).

The course's settings, with nbgrader's formgrader and Create Assignment on: the instructor releases,
collects, autogrades and releases feedback from the Formgrader tab (Nbgrader menu), or with the same
nbgrader commands in a terminal. labconfig/page_config.json beside this file turns the learners' Assignments
tab off here.
"""

from pathlib import Path

# ruff: noqa: F821 (`c`, `get_config` and `load_subconfig` are provided by traitlets when it loads this file)
c = get_config()
load_subconfig(str(Path(__file__).resolve().parents[2] / "jupyter_lab_config.py"))

# Loopback only; browsers come through the hub's proxy with their own Host header (see the learner config).
c.ServerApp.allow_remote_access = True
c.ServerApp.jpserver_extensions.update({"nbgrader.server_extensions.formgrader": True})
