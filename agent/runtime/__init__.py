"""The Runtime port (port.py) and its implementations.

DockerRuntime (docker_runtime.py) drives a real engine; FakeRuntime (fake_runtime.py)
keeps containers in memory for unit tests and hollow nodes.
"""
