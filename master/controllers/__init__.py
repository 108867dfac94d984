"""Controllers: pure reconcile functions over model objects, driven by a work queue.

Each controller module exports a pure `reconcile_*` returning actions; the
`manager` module runs them against the ClusterState and applies the actions.
"""
