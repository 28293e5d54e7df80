"""OPC UA tests import their helpers from opcua_support (next to this file); its fixtures are used here."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from opcua_support import pki, served  # noqa: F401  (fixtures)
