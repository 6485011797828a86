import sys
from pathlib import Path

# Tests import the helpers module and the checkout's own packages.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
