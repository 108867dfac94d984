"""Times every Kubernetes API request, by verb, route and status code (an aiohttp middleware).

The outermost middleware, so a request refused by authentication is counted with its 401 or
403. Labels stay bounded whatever clients ask for: `resource` is one of the resources the API
serves (`pods`, `deployments`, ...: read from the path as Kubernetes lays it out, with or
without a namespace), else the matched route pattern for the discovery paths (`/version`,
`/apis/{group}`), else `unknown`. A watch is timed over its whole life, like a gRPC stream.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from master.api.kube.resources import RESOURCES
from master.metrics.series import KUBE_API_REQUESTS

SERVED = frozenset(r.name.split("/")[0] for r in RESOURCES)


def resource_of(path: str) -> str | None:
    """`pods` for /api/v1/pods, /api/v1/namespaces/x/pods/y, /apis/apps/v1/...; else None."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        rest = parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis" and parts[2] == "v1":
        rest = parts[3:]
    else:
        return None
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    return rest[0] if rest and rest[0] in SERVED else None


def _resource(request: web.Request) -> str:
    served = resource_of(request.path)
    if served is not None:
        return served
    route = request.match_info.route.resource
    if route is None or "{tail" in route.canonical:
        return "unknown"
    return route.canonical


@web.middleware
async def request_metrics(request: web.Request, handler: Any) -> web.StreamResponse:
    start = time.perf_counter()
    code = "500"
    try:
        response: web.StreamResponse = await handler(request)
        code = str(response.status)
        return response
    except web.HTTPException as exc:
        code = str(exc.status)
        raise
    finally:
        KUBE_API_REQUESTS.labels(request.method, _resource(request), code).observe(
            time.perf_counter() - start
        )
