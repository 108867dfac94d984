"""The master's application layer: transport-free use cases.

Apply, delete, scale, rollback and node reports are decided here, over the
model's dataclasses and the ClusterState, so the gRPC servicers and the
Kubernetes HTTP API are only edges: they convert their wire format, call these
functions and map `AppError.code` onto their own status codes.
"""
