"""Vision tests import their helpers from vision_support (next to this file)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
