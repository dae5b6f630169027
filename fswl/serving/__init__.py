"""The contract between the composition root and the services: Runtime, Service, ANNOUNCE, service_factory."""

from fswl.serving.factory import service_factory
from fswl.serving.runtime import ANNOUNCE, Runtime, Service

__all__ = ["ANNOUNCE", "Runtime", "Service", "service_factory"]
