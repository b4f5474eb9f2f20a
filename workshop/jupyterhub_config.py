"""JupyterHub for a workshop of the course: `make workshop` (after workshop/prepare.py) runs `jupyterhub -f` on this.

- Log in: FirstUseAuthenticator, only the roster's accounts. The instructor is the hub's admin.
- Servers: LocalProcessSpawner; the hub runs as root and starts each server as its owner's Linux account. A
  learner's server: the course's JupyterLab with nbgrader's Assignments tab (workshop/learner/). The
  instructor's: formgrader on the course directory in their home (workshop/instructor/).
- The board (workshop/board/): a managed service at /services/board/ that the learner checks report to. The
  instructor holds its custom scope READ_ALL; a learner may open it and sees their own progress only.
- Network: the loopback interface unless WORKSHOP_PUBLIC=1, which serves the hub on every interface over
  HTTPS with the instructor's certificate (WORKSHOP_TLS_CERT, WORKSHOP_TLS_KEY).

Settings come from the environment (the Makefile sets them): WORKSHOP_DIR, and those
workshop/settings.py reads.
"""

import os
import pwd
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grading.grader.settings import CELL_TIMEOUT_S
from part_utils.settings import BOARD_URL_ENV
from workshop import settings
from workshop.board.app import NAME as BOARD
from workshop.board.app import READ_ALL
from workshop.prepare import course_id, instructor_env, instructor_of, read_roster

c = get_config()  # noqa: F821 (defined by traitlets when it loads this file)

SETTINGS = settings.read()
WORKSHOP_DIR = SETTINGS.directory
PEOPLE = read_roster(SETTINGS.roster)
INSTRUCTOR = instructor_of(PEOPLE).username
WORLD = SETTINGS.world
COURSE_ID = course_id()

# --- network --------------------------------------------------------------------------------------------------------
c.JupyterHub.port = SETTINGS.port
if SETTINGS.public:
    cert, key = SETTINGS.tls_cert, SETTINGS.tls_key
    if not (cert and key):
        sys.exit("WORKSHOP_PUBLIC=1 needs the certificate and its key: WORKSHOP_TLS_CERT=... WORKSHOP_TLS_KEY=...")
    c.JupyterHub.ip = ""  # every interface
    c.JupyterHub.ssl_cert, c.JupyterHub.ssl_key = cert, key
else:
    c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.hub_ip = "127.0.0.1"
# The hub's own API and the proxy's API listen on the next two ports, on the loopback interface only.
c.JupyterHub.hub_port = c.JupyterHub.port + 1
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{c.JupyterHub.port + 2}"
BOARD_URL = f"http://127.0.0.1:{c.JupyterHub.port + 3}"
c.Spawner.ip = "127.0.0.1"
c.ConfigurableHTTPProxy.command = [str(REPO / "workshop" / "node_modules" / ".bin" / "configurable-http-proxy")]

# --- the hub's own state, readable by root only ---------------------------------------------------------------------
HUB_STATE = WORKSHOP_DIR / "hub"
c.JupyterHub.db_url = f"sqlite:///{HUB_STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(HUB_STATE / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(HUB_STATE / "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = str(HUB_STATE / "jupyterhub-proxy.pid")

# --- who may log in -------------------------------------------------------------------------------------------------
c.JupyterHub.authenticator_class = "firstuseauthenticator.FirstUseAuthenticator"
c.FirstUseAuthenticator.dbm_path = str(HUB_STATE / "passwords.dbm")
c.FirstUseAuthenticator.create_users = False  # only the roster: a stranger cannot claim a name by logging in first
c.FirstUseAuthenticator.min_password_length = 8
c.Authenticator.allowed_users = {p.username for p in PEOPLE}
c.Authenticator.admin_users = {INSTRUCTOR}

# --- the board: a service the hub starts and stops, and who may see what on it ---------------------------------------
c.JupyterHub.services = [
    {
        "name": BOARD,
        "url": BOARD_URL,
        "command": [sys.executable, "-m", "workshop.board"],
        "cwd": str(REPO),
        "environment": {settings.DIRECTORY_ENV: str(WORKSHOP_DIR), "WORKSHOP_ROSTER": str(SETTINGS.roster), "PYTHONPATH": str(REPO)},
        # The most a browser's token for the board may carry: the instructor's token carries READ_ALL.
        "oauth_client_allowed_scopes": [READ_ALL],
        "oauth_no_confirm": True,  # the hub's own service: no "authorize this application?" page
    }
]
c.JupyterHub.custom_scopes = {READ_ALL: {"description": "See every learner's checks on the workshop board."}}
c.JupyterHub.load_roles = [
    {"name": "board-instructor", "scopes": [READ_ALL, f"access:services!service={BOARD}"], "users": [INSTRUCTOR]},
    # Learners may open the board's service, which shows them their own progress only.
    {"name": "board-learner", "scopes": [f"access:services!service={BOARD}"], "users": [p.username for p in PEOPLE if p.role == "learner"]},
]

# --- whose servers, running as whom ---------------------------------------------------------------------------------
c.JupyterHub.spawner_class = "localprocess"
BIN = Path(sys.executable).parent
c.Spawner.cmd = [str(BIN / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120


def _common_env() -> dict[str, str]:
    env = {
        "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
        settings.DIRECTORY_ENV: str(WORKSHOP_DIR),
        "LATENT_GRADIENTS_WORLD": WORLD,
        settings.COURSE_ID_ENV: COURSE_ID,
        "HF_HOME": str(WORKSHOP_DIR / "hf-cache"),
        # The model files were cached once by prepare.py (WORLD=gpt2); learners never download them again.
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO),
        "LATENT_GRADIENTS_CELL_TIMEOUT": str(CELL_TIMEOUT_S),
    }
    if os.environ.get("LATENT_GRADIENTS_DEVICE"):
        env["LATENT_GRADIENTS_DEVICE"] = os.environ["LATENT_GRADIENTS_DEVICE"]
    return env


def _role_env(spawner) -> None:
    home = Path(pwd.getpwnam(spawner.user.name).pw_dir)
    env = _common_env()
    if spawner.user.name == INSTRUCTOR:
        course = home / "course"
        env.update(instructor_env(WORKSHOP_DIR, course))
        spawner.notebook_dir = str(course)
    else:
        env["JUPYTER_CONFIG_PATH"] = str(REPO / "workshop" / "learner")
        # The learner checks report each run here, with the server's hub token (tests/_board.py).
        env[BOARD_URL_ENV] = f"{BOARD_URL}/services/{BOARD}/api/events"
        spawner.notebook_dir = str(home)
    spawner.environment = env


c.Spawner.pre_spawn_hook = _role_env
