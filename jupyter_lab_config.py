"""JupyterLab as the course runs it: `make lab` and the browser test (project_tests/test_browser.py) pass
this file with `--config=jupyter_lab_config.py`.

- Local only: the server listens on the loopback interface, with a token.
- Nothing is fetched from the network: no news feed, no update check, no extension manager (which
  queries PyPI). Everything the page loads (JupyterLab, plotly.js, circuitsvis) is served locally.
- nbgrader, student side only: the notebook toolbar's Validate button (and its server extension) is
  on; the instructor tools (formgrader, Create Assignment) and the exchange-based assignment and
  course lists, which need a JupyterHub exchange this course does not use, are off.
"""

# ruff: noqa: F821 (`c` and `get_config` are provided by traitlets when it loads this file)
c = get_config()

c.ServerApp.ip = "127.0.0.1"
c.ServerApp.allow_remote_access = False

c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
c.LabApp.extension_manager = "readonly"

NBGRADER_SERVER_EXTENSIONS = {
    "nbgrader.server_extensions.validate_assignment": True,
    "nbgrader.server_extensions.formgrader": False,
    "nbgrader.server_extensions.assignment_list": False,
    "nbgrader.server_extensions.course_list": False,
}
c.ServerApp.jpserver_extensions.update(NBGRADER_SERVER_EXTENSIONS)

# JupyterLab front-end plugins the course turns off (the nbgrader ones: see the docstring).
DISABLED_LAB_PLUGINS = [
    "@jupyter/nbgrader:menu",
    "@jupyter/nbgrader:create-assignment",
    "@jupyter/nbgrader:assignment-list",
    "@jupyter/nbgrader:course-list",
    "@jupyterlab/apputils-extension:announcements",
    "@jupyterlab/extensionmanager-extension:plugin",
]


def _course_page_config(handler, page_config):  # jupyterlab_server's hook signature
    disabled = list(page_config.get("disabledExtensions", []))
    page_config["disabledExtensions"] = disabled + [name for name in DISABLED_LAB_PLUGINS if name not in disabled]
    return page_config


c.ServerApp.tornado_settings = {"page_config_hook": _course_page_config}
