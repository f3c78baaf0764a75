# The project's JupyterLab settings. `make lab` (and the browser test, which starts the
# lab through `make lab`) puts this folder on JUPYTER_CONFIG_PATH, so nothing is written
# to the user's home, and the user's own ~/.jupyter still takes precedence.
#
# A class should see the notebooks and nothing else, and no request should leave the
# machine. JupyterLab 4 asks "Would you like to get notified about official Jupyter
# news?" on first start, and checks for a newer release of itself:
# - labconfig/default_setting_overrides.json sets the notification plugin's defaults
#   to fetchNews "false" (never fetch, never ask) and checkForUpdates false, so the
#   page neither shows the prompt nor calls /lab/api/news or /lab/api/update;
# - the two settings below make the server side inert too, should a user turn either
#   back on: no news feed URL, and an update checker that never makes a request.
c = get_config()  # noqa: F821 - provided by traitlets when it loads this file
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.handlers.announcements.NeverCheckForUpdate"
