"""The contract between the composition root and the services: Runtime, Service, ANNOUNCE."""

from fswl.serving.runtime import ANNOUNCE, Runtime, Service

__all__ = ["ANNOUNCE", "Runtime", "Service"]
