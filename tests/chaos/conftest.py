"""Fixtures for the chaos suite (fault injection and hostile input).

Everything from tests/e2e/conftest.py is reused: the e2e conftest is loaded under the module name
"e2e_conftest" (pytest has already registered this file as "conftest", so a plain "from conftest import *"
would import this file itself) and re-exported, fixtures included. tests/e2e is also put on sys.path so
that scripted_receiver and ops_helpers import as they do in the e2e suite.
"""
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.normpath(os.path.join(HERE, "..", "e2e"))
if E2E not in sys.path:
    sys.path.insert(0, E2E)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

if "e2e_conftest" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("e2e_conftest", os.path.join(E2E, "conftest.py"))
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["e2e_conftest"] = _module
    _spec.loader.exec_module(_module)

from e2e_conftest import *  # noqa: E402,F401,F403  (fixtures: pg_admin_url, db_url, db, master_key, ctl, ...)
from e2e_conftest import _yaml  # noqa: E402,F401
