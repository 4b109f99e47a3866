"""kmock's Kubernetes emulator, completed into an API server that clients and kubectl accept.

kmock's ``KubernetesEmulator`` stores objects and serves discovery, lists, watches and merge
patches. The subclass here fills in what clients (the ``kubernetes`` package, kubectl, kopf)
rely on and kmock does not do (each gap is named where it is closed): namespaces as a resource,
``kind`` on lists, PUT, JSON and strategic-merge patches, resourceVersion and generation, uid and
creationTimestamp, generateName, the status subresource, label and field selectors, Secret
``stringData``, CRD registration, pruning and defaulting, owner-reference garbage collection,
kubectl's server-side table printing, and OpenAPI v3 for ``kubectl apply`` and ``explain``.

Private to ``llm_failover.sandbox.cluster``, which serves it from a thread of its own.

``server.Emulator`` routes requests and serves reads; it extends ``store.Store``, which applies
writes; the other modules hold the rules those two follow.
"""

from .kinds import read_crds
from .server import Emulator

__all__ = ["Emulator", "read_crds"]
