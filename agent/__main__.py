"""Entry point: `python -m agent --master HOST:PORT --name NODE --advertise-address IP`."""

import sys

from agent.main import main

sys.exit(main())
