"""The controller: declared load balancers, built and changed durably.

:class:`controller_stub.controller.api.Controller` is the Python API (tests,
the demo and the REST layer call it); ``worker`` runs the persisted flows;
``daemon`` is ``amphora-controller``. See docs/controller.md.
"""
