"""Settings every test shares.

Masters and agents the tests start (as processes, which inherit this environment) serve no
/metrics unless a test asks for it: the defaults 127.0.0.1:9400/9401 would collide between
the many masters and agents that tests run side by side. The metrics tests pass
`--metrics-listen 127.0.0.1:0`.
"""

from __future__ import annotations

import os

os.environ["PINNACE_METRICS_LISTEN"] = ""
