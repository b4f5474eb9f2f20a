"""The workshop board: a JupyterHub service that shows the instructor, live, which learner check each learner
passed and on which named mistake a failing one is stuck (`make workshop` starts it with the hub).

- `events`: what a check run's event is, the checks' catalogue it is validated against, the per-learner
  rate limit.
- `store`: the events, in SQLite in the workshop directory, each counted once.
- `progress`: the board's state folded from the events: the learners x exercises grid and the class panel.
- `app`: the tornado application behind /services/board/: the API, the pages, the live stream, the CSV export,
  with the hub's own authentication (`jupyterhub.services.auth`).
"""
