"""The wire contract between the amphora agent and a controller.

Both :mod:`amphora_agent` and :mod:`controller_stub` import it, and nothing
here imports either, so the two sides cannot drift apart:

- :mod:`amphora_contract.api`: API version, error bodies, the "not ready" retry signal
- :mod:`amphora_contract.agent_config`: the agent-config schema, its parser and writer
- :mod:`amphora_contract.heartbeat`: the heartbeat envelopes v3 and v4 (wrap, unwrap, verifier)
- :mod:`amphora_contract.peers`: the HAProxy peer name (``-L``) of an amphora
- :mod:`amphora_contract.netns`: enter a network namespace from one thread

It depends on the standard library only (docs/architecture.md).
"""
