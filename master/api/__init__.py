"""The master's API edge: gRPC servicers, proto <-> model conversion and rendering.

Servicers stay thin: they convert wire messages to model objects (convert.py),
hand decisions to the core, and render stored objects as Kubernetes-shaped
dicts (render.py) for `pinnace get -o json|yaml` and the CLI's tables.
"""
