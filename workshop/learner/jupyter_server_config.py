"""A learner's JupyterLab in the workshop (jupyterhub_config.py points JUPYTER_CONFIG_PATH here).

The course's own settings (../../jupyter_lab_config.py: nothing fetched from the network, Validate on),
plus nbgrader's Assignments tab (fetch, submit, fetch feedback) on nbgrader's exchange. The instructor
tools stay off: labconfig/page_config.json beside this file turns their JupyterLab plugins off (JupyterHub's
server replaces the page_config_hook that `make lab` uses for this).
"""

from pathlib import Path

# ruff: noqa: F821 (`c`, `get_config` and `load_subconfig` are provided by traitlets when it loads this file)
c = get_config()
load_subconfig(str(Path(__file__).resolve().parents[2] / "jupyter_lab_config.py"))

# The server listens on the loopback interface only; browsers reach it through the hub's proxy, which
# keeps their Host header (a public name when the hub is public).
c.ServerApp.allow_remote_access = True
c.ServerApp.jpserver_extensions.update({"nbgrader.server_extensions.assignment_list": True})
